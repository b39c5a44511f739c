"""The demo's live phase: fresh events through featurehouse's push path, for a few seconds.

A producer continues the generated history: a card that shopped lately buys again at one of its
merchants, a user views, clicks or buys an item they looked at lately. Each event becomes the rows
the feature views' SQL would compute for it (`user_txn_stats`, `card_txn_stats`,
`user_item_affinity`: their rolling windows over the history and the events pushed before it),
pushed with `FeatureStore.push` into each view's durable stream. A stream consumer
(`FeatureStore.stream_consumer`, what `featurehouse stream` runs) applies them as they come: the
view's landing table in the warehouse first, then the online store. So the newest values online are
seconds old, the warehouse holds the same rows (parity, training and skew read them), and the
consumer has recorded its lag (freshness and serving read it).

Who acts is drawn from a generator seeded by the demo's seed; when is the clock's.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from featurehouse.clock import EPOCH, utc_now

STREAMED = ("user_txn_stats", "card_txn_stats", "user_item_affinity")

_S = 1_000_000
_H = 3600 * _S
_D = 24 * _H
_RECENT = 7 * _D  # who acts: cards and user-item pairs active in the last week of the history


@dataclass
class LiveStats:
    seconds: float = 0.0
    transactions: int = 0
    interactions: int = 0
    rows_pushed: int = 0
    rejected: int = 0
    applied: int = 0  # stream entries the consumer applied
    lag_s: float = 0.0  # the consumer's largest recorded lag at the end
    last_user: int | None = None  # the user of the last transaction pushed
    last_event_time: datetime | None = None  # and its event time


def _micros(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def money(value: float) -> float:
    """An amount rounded to cents as the views' `money` macro does (a cast to numeric(18, 2))."""
    return float(Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


class Window:
    """One entity's events in time order, for rolling windows that include the current event."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self.rows: list[tuple] = []

    def add(self, t: int, row: tuple) -> None:
        i = len(self.times)
        while i and self.times[i - 1] > t:  # the history arrives in time order; this is for safety
            i -= 1
        self.times.insert(i, t)
        self.rows.insert(i, row)

    def since(self, t: int) -> list[tuple]:
        """The events at or after `t` (a window `range between ... preceding and current row`)."""
        return self.rows[bisect_left(self.times, t):]

    @property
    def last(self) -> int | None:
        return self.times[-1] if self.times else None


class Producer:
    """Fresh transactions and interactions continuing the generated history, as feature rows."""

    def __init__(self, tables: dict[str, pa.Table], seed: int):
        self.rng = np.random.default_rng([seed, 20260601])
        tx = tables["transactions"]
        tx_at = _column_micros(tx, "transaction_at")
        newest = int(tx_at.max()) if len(tx_at) else 0
        users, cards = tx.column("user_id").to_numpy(), tx.column("card_id").to_numpy()
        amounts = tx.column("amount").to_numpy()
        online = _equals(tx, "channel", "online")
        order = np.argsort(tx_at, kind="stable")
        # every card's last transaction (for seconds_since_previous_txn), and the last week's in time order
        last = np.unique(cards[order][::-1], return_index=True)
        self.card_last: dict[int, int] = dict(zip(last[0].tolist(), tx_at[order][::-1][last[1]].tolist()))
        self.user_tx: dict[int, Window] = defaultdict(Window)
        self.card_tx: dict[int, Window] = defaultdict(Window)
        recent = order[tx_at[order] >= newest - _RECENT]
        for i in recent:
            t, user, card = int(tx_at[i]), int(users[i]), int(cards[i])
            self.user_tx[user].add(t, (float(amounts[i]),))
            self.card_tx[card].add(t, (float(amounts[i]), bool(online[i])))
        self.shoppers = [(int(cards[i]), int(users[i]), float(amounts[i]), bool(online[i])) for i in recent]

        it = tables["interactions"]
        it_at = _column_micros(it, "interaction_at")
        newest_it = int(it_at.max()) if len(it_at) else 0
        keep = np.flatnonzero(it_at >= newest_it - 30 * _D)
        it_users, items = it.column("user_id").to_numpy(), it.column("item_id").to_numpy()
        kinds = it.column("interaction_type").to_pylist()
        self.pair_events: dict[tuple[int, int], Window] = defaultdict(Window)
        for i in keep[np.argsort(it_at[keep], kind="stable")]:
            self.pair_events[(int(it_users[i]), int(items[i]))].add(int(it_at[i]), (kinds[i],))
        recent_pairs = np.flatnonzero(it_at >= newest_it - _RECENT)
        self.browsers = [(int(it_users[i]), int(items[i])) for i in recent_pairs]

    def _event_time(self, now: datetime, *windows: Window) -> int:
        """A moment before `now` (the event reached the producer 0.1-0.8 s after it happened), in whole
        milliseconds, after each given entity's last event."""
        t = _micros(now) - int(self.rng.uniform(0.1, 0.8) * _S)
        t -= t % 1000
        for w in windows:
            if w.last is not None and t <= w.last:
                t = w.last + 1000
        return t

    def transaction(self, now: datetime) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """A card of the last week shops again: (the transaction, the row of each view it changes)."""
        card, user, amount, online = self.shoppers[int(self.rng.integers(len(self.shoppers)))]
        amount = money(max(amount * float(np.exp(self.rng.normal(0.0, 0.35))), 0.5))
        user_w, card_w = self.user_tx[user], self.card_tx[card]
        t = self._event_time(now, user_w, card_w)
        previous = self.card_last.get(card)
        user_w.add(t, (amount,))
        card_w.add(t, (amount, online))
        self.card_last[card] = t
        week, day, hour = user_w.since(t - 7 * _D), user_w.since(t - _D), user_w.since(t - _H)
        card_day, card_hour = card_w.since(t - _D), card_w.since(t - _H)
        event_time = _time(t)
        event = {"user_id": user, "card_id": card, "amount": amount, "channel": "online" if online else "card_present",
                 "transaction_at": event_time}
        return event, {
            "user_txn_stats": {
                "user_id": user, "event_time": event_time,
                "txn_count_1h": len(hour), "txn_count_24h": len(day), "txn_count_7d": len(week),
                "amount_sum_24h": money(sum(r[0] for r in day)), "amount_sum_7d": money(sum(r[0] for r in week)),
                "amount_max_7d": max(r[0] for r in week),
            },
            "card_txn_stats": {
                "card_id": card, "event_time": event_time,
                "txn_count_1h": len(card_hour), "txn_count_24h": len(card_day),
                "online_txn_count_1h": sum(1 for r in card_hour if r[1]),
                "amount_sum_1h": money(sum(r[0] for r in card_hour)),
                "amount_sum_24h": money(sum(r[0] for r in card_day)),
                "amount_max_24h": max(r[0] for r in card_day),
                "seconds_since_previous_txn": None if previous is None else _epoch_seconds(t - previous),
            },
        }

    def interaction(self, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
        """A user of the last week comes back to an item: (the interaction, its user_item_affinity row)."""
        user, item = self.browsers[int(self.rng.integers(len(self.browsers)))]
        window = self.pair_events[(user, item)]
        last_kind = window.rows[-1][0] if window.rows else None
        if last_kind == "view":
            kind = str(self.rng.choice(["view", "click"], p=[0.7, 0.3]))
        elif last_kind == "click":
            kind = str(self.rng.choice(["view", "click", "purchase"], p=[0.5, 0.25, 0.25]))
        else:
            kind = "view"
        t = self._event_time(now, window)
        window.add(t, (kind,))
        month = [r[0] for r in window.since(t - 30 * _D)]
        event = {"user_id": user, "item_id": item, "interaction_type": kind, "interaction_at": _time(t)}
        return event, {"user_id": user, "item_id": item, "event_time": _time(t),
                "interaction_count_30d": len(month), "click_count_30d": month.count("click"),
                "purchase_count_30d": month.count("purchase"), "last_interaction_type": kind}


def _epoch_seconds(micros: int) -> float:
    """An interval's seconds as `extract(epoch from interval)` gives them (DuckDB: whole days, then the rest)."""
    days, rest = divmod(micros, _D)
    return days * 86400 + rest / _S


def _column_micros(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).cast(pa.int64()).to_numpy()


def _equals(table: pa.Table, column: str, value: str) -> np.ndarray:
    import pyarrow.compute as pc

    # pyarrow.compute makes its kernel wrappers at import, out of a type checker's sight
    return pc.call_function("equal", [table.column(column), pa.scalar(value)]).to_numpy(zero_copy_only=False)


def run_live(store, tables: dict[str, pa.Table], seed: int, seconds: float,
             progress: Callable[[LiveStats, float], None] | None = None, interval_s: float = 0.2) -> LiveStats:
    """Push fresh events for `seconds` while a stream consumer applies them; then let it catch up.
    `progress(stats, seconds_left)` is called after every round."""
    from featurehouse.stream.log import stream_lag

    producer = Producer(tables, seed)
    views = [v for v in STREAMED if v in store.registry.view_names()]
    consumer = store.stream_consumer(views, name="featurehouse-demo")
    stats = LiveStats()
    started = time.monotonic()
    deadline = started + seconds
    rounds = 0
    while True:
        now = utc_now()
        batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if producer.shoppers:
            event, rows = producer.transaction(now)
            for view, row in rows.items():
                batches[view].append(row)
            stats.transactions += 1
            stats.last_user, stats.last_event_time = event["user_id"], event["transaction_at"]
        if producer.browsers and rounds % 2 == 0:
            batches["user_item_affinity"].append(producer.interaction(now)[1])
            stats.interactions += 1
        for view, rows in batches.items():
            if view in views:
                result = store.push(view, rows)
                stats.rows_pushed += result.accepted
                stats.rejected += len(result.rejected)
        consumer.run_once()
        stats.applied = consumer.stats.processed
        rounds += 1
        left = deadline - time.monotonic()
        if progress is not None:
            progress(stats, max(left, 0.0))
        if left <= 0:
            break
        time.sleep(min(interval_s, left))
    while consumer.run_once():  # the rest of what was pushed
        pass
    stats.applied = consumer.stats.processed
    stats.seconds = time.monotonic() - started
    lags = [stream_lag(store.online.client, store.registry.view(v)) for v in views]
    stats.lag_s = max((lag for lag in lags if lag is not None), default=0.0)
    return stats
