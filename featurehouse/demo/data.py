"""Deterministic synthetic data for the demo project (`dbt_project/`): card fraud and item recommendations.

`generate()` returns seven Arrow tables (users, cards, merchants, transactions, items, interactions,
and snapshot_runs) holding the history up to an instant `end`, by default now: the data is what the
operational systems would hold at that moment, the same for a given scale, seed and `end` on every
machine. It is drawn on a fixed 60-day grid (ending at `END`, 2026-06-01 00:00 UTC), moved by whole
days so that the grid ends at the first midnight at or after `end` (the daily rhythm stays where it
was), then cut at `end`: an event or record is there once it was ingested (`ingested_at`/`created_at`
at or before `end`), a chargeback once it was filed, a premium upgrade once it was recorded. `write()`
puts the tables in the warehouse's `raw` schema, where the dbt sources point.

What is in the data, so that the features have something to find:

* Cards belong to users (1-3 each); merchants have a category (with typical amounts and a fraud
  risk) and a country; a few merchants are compromised (a common point of purchase for stolen cards).
* Transactions follow each card's activity level and a daily rhythm, mostly at home-country and
  favourite merchants, with lognormal amounts. Fraud (~1.5%) comes mostly in bursts on a stolen card:
  a tiny card test, then several large online purchases at risky merchants within about an hour, at
  any hour of the night. Cards that shopped at a compromised merchant are stolen far more often.
  Some background fraud follows merchant risk. Chargebacks are filed days to weeks after most fraud
  (and a few disputes); those not filed by `end` are not known yet (null).
* Interactions come in sessions of item views; clicks follow views (likelier for good items and for
  the user's favourite category), purchases follow clicks. Item popularity is Zipf-skewed; some items
  are listed during the window (cold start).
* Every event has its event time and an `ingested_at` a few seconds later; ~1% arrive hours late
  (those not arrived by `end` are not there yet).
* snapshot_runs: one row per run of the daily snapshot job (merchant_risk, item_popularity), which
  snapshots each day at its end and runs an hour later; the runs due by `end`.

All timestamps are naive UTC `timestamp[us]`; keys are int64.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

END = np.datetime64("2026-06-01T00:00:00", "us")
DAYS = 60
START = END - np.timedelta64(DAYS, "D")

_S = 1_000_000  # microseconds per second
_H = 3600 * _S
_D = 24 * _H
_END = int(END.astype(np.int64))
_START = int(START.astype(np.int64))

COUNTRIES = np.array(["US", "GB", "DE", "FR", "NL", "ES", "IT", "CA", "BR", "IN"])
COUNTRY_P = np.array([0.34, 0.14, 0.11, 0.09, 0.05, 0.06, 0.05, 0.06, 0.05, 0.05])

# category: (share of merchants, median amount, fraud risk, share of online payments)
MERCHANT_CATEGORIES = {
    "grocery": (0.18, 35.0, 0.3, 0.10),
    "restaurants": (0.16, 28.0, 0.4, 0.15),
    "fuel": (0.08, 50.0, 0.5, 0.02),
    "fashion": (0.10, 75.0, 1.0, 0.50),
    "electronics": (0.07, 220.0, 3.0, 0.60),
    "travel": (0.05, 380.0, 2.5, 0.85),
    "digital_goods": (0.08, 15.0, 3.0, 1.00),
    "gaming": (0.05, 25.0, 2.5, 0.95),
    "pharmacy": (0.06, 22.0, 0.3, 0.15),
    "home": (0.07, 95.0, 0.8, 0.40),
    "entertainment": (0.06, 40.0, 1.0, 0.50),
    "health_beauty": (0.04, 45.0, 0.7, 0.35),
}

# category: (share of items, median price)
ITEM_CATEGORIES = {
    "books": (0.16, 14.0), "electronics": (0.12, 120.0), "home": (0.12, 45.0), "fashion": (0.15, 40.0),
    "sports": (0.09, 55.0), "toys": (0.08, 25.0), "beauty": (0.09, 20.0), "grocery": (0.07, 8.0),
    "garden": (0.06, 35.0), "music": (0.06, 12.0),
}

# relative activity per hour of day (UTC, treated as local time)
_SHOPPING_HOURS = np.array([0.6, 0.4, 0.3, 0.25, 0.25, 0.35, 0.8, 1.5, 2.2, 2.6, 2.8, 3.0,
                            3.3, 3.1, 2.9, 2.9, 3.0, 3.3, 3.5, 3.4, 3.0, 2.4, 1.7, 1.0])
_BROWSING_HOURS = np.array([1.0, 0.6, 0.4, 0.3, 0.3, 0.4, 0.7, 1.2, 1.5, 1.6, 1.7, 1.9,
                            2.2, 2.0, 1.9, 1.9, 2.0, 2.3, 2.7, 3.2, 3.6, 3.5, 2.8, 1.8])

TABLES = ("users", "cards", "merchants", "transactions", "items", "interactions", "snapshot_runs")
SNAPSHOT_DELAY = np.timedelta64(1, "h")  # the daily snapshot job runs an hour after each day's end


def generate(scale: float = 1.0, seed: int = 42, end: datetime | None = None) -> dict[str, pa.Table]:
    """The demo's raw tables as of `end` (naive UTC; default: now), the same for the same scale, seed
    and `end` (scale 1: about 150k transactions in 60 days).

    The history is drawn on the fixed grid ending at END, moved by whole days so that it ends at the
    first midnight at or after `end`, and cut at `end` (see the module docstring): the newest events
    are seconds to minutes old, as in a live system.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if end is None:
        from featurehouse.clock import utc_now

        end = utc_now()
    if end.tzinfo is not None:
        raise ValueError(f"end must be naive UTC, got {end!r}")
    rng = np.random.default_rng(seed)
    n = lambda base: max(int(round(base * scale)), 1)  # noqa: E731

    users, u = _users(rng, n(5_000))
    cards, c = _cards(rng, n(7_000), u)
    merchants, m = _merchants(rng, n(800))
    transactions = _transactions(rng, n(150_000), u, c, m)
    items, it = _items(rng, n(2_000))
    interactions = _interactions(rng, n(120_000), u, it)
    tables = {"users": users, "cards": cards, "merchants": merchants, "transactions": transactions,
              "items": items, "interactions": interactions}
    cut = np.datetime64(end, "us")
    days = np.ceil((cut - END) / np.timedelta64(1, "D"))  # the grid's end: the first midnight at or after `end`
    offset = np.timedelta64(int(days), "D").astype("timedelta64[us]")
    tables = {name: _shift(t, offset) for name, t in tables.items()}
    tables = _as_of(tables, cut)
    tables["snapshot_runs"] = _snapshot_runs(START + offset, cut)
    return tables


def _shift(table: pa.Table, offset: np.timedelta64) -> pa.Table:
    """Every timestamp column moved by `offset`."""
    import pyarrow.compute as pc

    by = pa.scalar(int(offset.astype("timedelta64[us]").astype(np.int64)), pa.duration("us"))
    # pc.add: pyarrow.compute makes its kernel wrappers at import, out of a type checker's sight
    columns = [pc.call_function("add", [col, by]) if pa.types.is_timestamp(col.type) else col
               for col in table.columns]
    return pa.table(columns, names=table.column_names)


def _as_of(tables: dict[str, pa.Table], cut: np.datetime64) -> dict[str, pa.Table]:
    """What the operational systems hold at `cut`: rows ingested by then, chargebacks filed by then, and
    users as they were (an upgrade recorded later is not there yet)."""
    import pyarrow.compute as pc

    f = pc.call_function  # pyarrow.compute's kernel wrappers are made at import, out of a type checker's sight
    at = pa.scalar(cut, pa.timestamp("us"))
    no_time = pa.scalar(None, pa.timestamp("us"))

    def known(table: pa.Table, column: str) -> pa.Table:
        return table.filter(f("less_equal", [table.column(column), at]))

    def replace(table: pa.Table, name: str, where, value) -> pa.Table:
        return table.set_column(table.column_names.index(name), name, f("if_else", [where, value, table.column(name)]))

    out = {name: known(tables[name], "created_at") for name in ("users", "cards", "merchants", "items")}
    out["transactions"] = known(tables["transactions"], "ingested_at")
    out["interactions"] = known(tables["interactions"], "ingested_at")

    tx = out["transactions"]
    unfiled = f("coalesce", [f("greater", [tx.column("chargeback_at"), at]), pa.scalar(False)])
    tx = replace(tx, "chargeback_at", unfiled, no_time)
    out["transactions"] = replace(tx, "is_chargeback", unfiled, pa.scalar(False))

    users = out["users"]
    upgraded_later = f("coalesce", [f("greater", [users.column("premium_since"), users.column("signup_at")]), pa.scalar(False)])
    not_yet = f("and", [upgraded_later, f("greater", [users.column("updated_at"), at])])
    users = replace(users, "is_premium", not_yet, pa.scalar(False))
    users = replace(users, "premium_since", not_yet, no_time)
    out["users"] = replace(users, "updated_at", not_yet, users.column("created_at"))
    return out


def _snapshot_runs(start: np.datetime64, cut: np.datetime64) -> pa.Table:
    """The daily snapshot job's runs due by `cut`: each day's end in the window, run an hour later."""
    first = (start + np.timedelta64(1, "D")).astype("datetime64[D]")
    last = (cut - SNAPSHOT_DELAY).astype("datetime64[D]")
    snapshot = np.arange(first, last + np.timedelta64(1, "D")).astype("datetime64[us]").astype(np.int64)
    return pa.table({"snapshot_time": _ts(snapshot), "ran_at": _ts(snapshot + _H)})


# -- helpers -----------------------------------------------------------------------------------

def _ts(us: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """int64 microseconds since the epoch -> naive timestamp[us]; `mask` marks nulls."""
    return pa.array(np.asarray(us, dtype=np.int64), type=pa.timestamp("us"), mask=mask)


def _time_of_day(rng: np.random.Generator, size: int, hours: np.ndarray) -> np.ndarray:
    hour = rng.choice(24, size=size, p=hours / hours.sum())
    return hour * _H + rng.integers(0, _H, size=size)


def _ingestion_delay(rng: np.random.Generator, size: int) -> np.ndarray:
    """A few seconds (lognormal), and for ~1% of events a late arrival 1-12 hours later."""
    delay = np.exp(rng.normal(np.log(4.0), 0.9, size)) * _S
    late = rng.random(size) < 0.01
    delay[late] += rng.uniform(1, 12, late.sum()) * _H
    return np.round(delay).astype(np.int64) + 200_000  # at least 0.2 s


def _ms(us: np.ndarray) -> np.ndarray:
    return (us // 1000) * 1000


def _make_unique(keys: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Nudge times by 1 ms until each (key, time) pair is unique (a handful of rows at most)."""
    t = t.copy()
    while True:
        order = np.lexsort((t, keys))
        k, s = keys[order], t[order]
        dup = np.flatnonzero((k[1:] == k[:-1]) & (s[1:] == s[:-1])) + 1
        if dup.size == 0:
            return t
        t[order[dup]] += 1000


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def _choice_by_group(rng: np.random.Generator, groups: np.ndarray, pool_group: np.ndarray,
                     pool_weight: np.ndarray) -> np.ndarray:
    """For each row, an index into the pool drawn by weight among pool entries of the row's group."""
    out = np.empty(len(groups), dtype=np.int64)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        pool = np.flatnonzero(pool_group == g)
        if pool.size == 0:
            pool = np.arange(len(pool_group))
        w = pool_weight[pool]
        out[rows] = pool[rng.choice(pool.size, size=rows.size, p=w / w.sum())]
    return out


# -- entities ----------------------------------------------------------------------------------

def _users(rng, n_users):
    new = rng.random(n_users) < 0.08  # signed up during the window
    signup = np.where(
        new,
        rng.uniform(_START, _END - 7 * _D, n_users),
        _START - rng.uniform(1 * _D, 3 * 365 * _D, n_users),
    ).astype(np.int64)
    signup = np.sort(_ms(signup))  # ids in signup order
    country = COUNTRIES[rng.choice(len(COUNTRIES), n_users, p=COUNTRY_P)]
    channel = np.array(["organic", "paid_search", "social", "referral", "partner"])[
        rng.choice(5, n_users, p=[0.42, 0.22, 0.16, 0.13, 0.07])]
    email_domain = np.array(["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "hey.com"])[
        rng.choice(6, n_users, p=[0.5, 0.18, 0.12, 0.14, 0.04, 0.02])]
    premium = rng.random(n_users) < 0.18
    at_signup = rng.random(n_users) < 0.5
    upgrade = signup + (rng.random(n_users) * (_END - _H - signup)).astype(np.int64) + _H
    premium_since = np.where(at_signup, signup, _ms(upgrade))
    created = signup + _ingestion_delay(rng, n_users)
    updated = np.where(premium & ~at_signup, premium_since + _ingestion_delay(rng, n_users), created)
    table = pa.table({
        "user_id": pa.array(np.arange(1, n_users + 1, dtype=np.int64)),
        "country": pa.array(country),
        "signup_channel": pa.array(channel),
        "email_domain": pa.array(email_domain),
        "is_premium": pa.array(premium),
        "signup_at": _ts(signup),
        "premium_since": _ts(premium_since, mask=~premium),
        "created_at": _ts(created),
        "updated_at": _ts(updated),
    })
    # activity: how much each user shops and browses
    facts = {"signup": signup, "country": country, "premium": premium,
             "activity": rng.gamma(0.9, 1.0, n_users) * np.where(premium, 1.3, 1.0),
             "browsing": rng.gamma(0.7, 1.0, n_users),
             "click_bias": rng.normal(0.0, 0.5, n_users)}
    return table, facts


def _cards(rng, n_cards, u):
    n_users = len(u["signup"])
    owner = np.concatenate([np.arange(n_users), rng.choice(n_users, max(n_cards - n_users, 0))])[:n_cards]
    first = np.zeros(n_cards, dtype=bool)
    first[: min(n_users, n_cards)] = True
    signup = u["signup"][owner]
    issued = np.where(
        first,
        signup + np.minimum(rng.exponential(2 * _D, n_cards), 10 * _D),
        signup + rng.random(n_cards) * np.maximum(_END - 2 * _D - signup, _D),
    )
    issued = _ms(np.minimum(issued, _END - _D).astype(np.int64))
    order = np.argsort(issued, kind="stable")  # card ids in issue order
    owner, issued = owner[order], issued[order]
    card_type = np.array(["debit", "credit", "prepaid"])[rng.choice(3, n_cards, p=[0.55, 0.40, 0.05])]
    table = pa.table({
        "card_id": pa.array(np.arange(1, n_cards + 1, dtype=np.int64)),
        "user_id": pa.array((owner + 1).astype(np.int64)),
        "card_type": pa.array(card_type),
        "issued_at": _ts(issued),
        "created_at": _ts(issued + _ingestion_delay(rng, n_cards)),
    })
    return table, {"owner": owner, "issued": issued, "prepaid": card_type == "prepaid"}


def _merchants(rng, n_merchants):
    names = np.array(list(MERCHANT_CATEGORIES))
    share, median, risk, online = (np.array(v) for v in zip(*MERCHANT_CATEGORIES.values()))
    cat = rng.choice(len(names), n_merchants, p=share / share.sum())
    country = COUNTRIES[rng.choice(len(COUNTRIES), n_merchants, p=COUNTRY_P)]
    compromised = rng.random(n_merchants) < 0.02
    onboarded = _ms((_START - rng.uniform(30 * _D, 5 * 365 * _D, n_merchants)).astype(np.int64))
    table = pa.table({
        "merchant_id": pa.array(np.arange(1, n_merchants + 1, dtype=np.int64)),
        "category": pa.array(names[cat]),
        "country": pa.array(country),
        "onboarded_at": _ts(onboarded),
        "created_at": _ts(onboarded + _ingestion_delay(rng, n_merchants)),
    })
    facts = {
        "country": country,
        "popularity": np.exp(rng.normal(0, 1.2, n_merchants)),
        "median": median[cat] * np.exp(rng.normal(0, 0.3, n_merchants)),
        "risk": risk[cat] * np.exp(rng.normal(0, 0.5, n_merchants)) * np.where(compromised, 6.0, 1.0),
        "online": online[cat],
        "compromised": compromised,
    }
    return table, facts


# -- transactions ------------------------------------------------------------------------------

def _transactions(rng, n_txn, u, c, m):
    n_cards, n_merch = len(c["owner"]), len(m["country"])

    # fraud bursts on stolen cards: ~1.1% of transactions
    burst_sizes = 2 + rng.poisson(5.0, max(int(round(n_txn * 0.011 / 7.0)), 1))
    n_burst = int(min(burst_sizes.sum(), n_txn // 10))
    n_legit = n_txn - n_burst

    # legitimate spending: card activity x share of the window the card existed
    active_from = np.maximum(c["issued"], _START)
    window_share = (_END - active_from) / (_END - _START)
    weight = u["activity"][c["owner"]] * window_share * np.where(c["prepaid"], 0.5, 1.0)
    card = rng.choice(n_cards, n_legit, p=weight / weight.sum())
    first_day = (active_from[card] - _START) // _D
    day = first_day + np.floor(rng.random(n_legit) * (DAYS - first_day)).astype(np.int64)
    t = _START + day * _D + _time_of_day(rng, n_legit, _SHOPPING_HOURS)
    early = t < c["issued"][card]
    t[early] = c["issued"][card][early] + rng.uniform(0.1, 1.0, early.sum()) * (_END - c["issued"][card][early])
    t = np.minimum(t, _END - 1000)

    # merchants: favourites (6 per card), else home country (85%), else anywhere, by popularity
    home = u["country"][c["owner"]]
    fav = _choice_by_group(rng, np.repeat(home, 6), m["country"], m["popularity"]).reshape(n_cards, 6)
    how = rng.random(n_legit)
    merchant = np.where(how < 0.5, fav[card, rng.integers(0, 6, n_legit)], -1)
    local = (merchant < 0) & (how < 0.5 + 0.5 * 0.85)
    merchant[local] = _choice_by_group(rng, home[card[local]], m["country"], m["popularity"])
    rest = merchant < 0
    merchant[rest] = rng.choice(n_merch, rest.sum(), p=m["popularity"] / m["popularity"].sum())
    amount = m["median"][merchant] * np.exp(rng.normal(0, 0.75, n_legit))
    online = rng.random(n_legit) < m["online"][merchant]
    # background fraud, following merchant risk (~0.35%)
    p_fraud = 0.0035 * m["risk"][merchant] / m["risk"][merchant].mean()
    fraud = rng.random(n_legit) < p_fraud
    amount[fraud] *= np.exp(rng.normal(0.6, 0.4, fraud.sum()))

    # bursts: stolen cards (far likelier after a compromised merchant), card test then big online buys
    burst_sizes = burst_sizes[np.cumsum(burst_sizes) <= n_burst]
    if burst_sizes.sum() < n_burst:
        burst_sizes = np.append(burst_sizes, n_burst - burst_sizes.sum())
    exposed = np.zeros(n_cards)
    exposed[np.unique(card[m["compromised"][merchant]])] = 1.0
    steal_w = (1.0 + 25.0 * exposed) * window_share
    stolen = rng.choice(n_cards, len(burst_sizes), replace=False, p=steal_w / steal_w.sum())
    lo = np.maximum(active_from[stolen], c["issued"][stolen])
    start = lo + rng.random(len(stolen)) * np.maximum(_END - 3 * _H - lo, _H)
    b_card = np.repeat(stolen, burst_sizes)
    first_in_burst = np.zeros(n_burst, dtype=bool)
    first_in_burst[np.concatenate([[0], np.cumsum(burst_sizes)[:-1]])] = True
    gaps = rng.exponential(6 * 60 * _S, n_burst) + 20 * _S
    gaps[first_in_burst] = 0
    burst_id = np.repeat(np.arange(len(burst_sizes)), burst_sizes)
    cum = np.cumsum(gaps)
    b_t = np.repeat(start, burst_sizes) + (cum - np.repeat(cum[first_in_burst], burst_sizes))
    b_t = np.minimum(b_t, _END - 1000).astype(np.int64)
    risky = m["risk"] * m["online"] * np.sqrt(m["popularity"]) * np.where(m["compromised"], 0.2, 1.0)
    b_merchant = rng.choice(n_merch, n_burst, p=risky / risky.sum())
    b_amount = m["median"][b_merchant] * np.exp(rng.normal(0.9, 0.5, n_burst))
    b_amount[first_in_burst] = rng.uniform(0.5, 3.0, first_in_burst.sum())
    del burst_id

    card = np.concatenate([card, b_card])
    merchant = np.concatenate([merchant, b_merchant])
    t = _ms(np.concatenate([t, b_t]).astype(np.int64))
    amount = np.maximum(np.round(np.concatenate([amount, b_amount]), 2), 0.5)
    online = np.concatenate([online, rng.random(n_burst) < 0.95])
    fraud = np.concatenate([fraud, np.ones(n_burst, dtype=bool)])
    user = c["owner"][card]
    t = _make_unique(user, t)

    # chargebacks: most fraud, a few disputes; filed 3-60 days later, unknown if after END
    n_all = len(t)
    disputed = np.where(fraud, rng.random(n_all) < 0.7, rng.random(n_all) < 0.0015)
    filed = t + (3 * _D + rng.gamma(2.0, 6.0, n_all) * _D).astype(np.int64)
    filed = _ms(filed)
    chargeback = disputed & (filed < _END)

    order = np.argsort(t, kind="stable")
    channel = np.where(online, "online", np.where(rng.random(n_all) < 0.55, "contactless", "chip"))
    t, card, user, merchant = t[order], card[order], user[order], merchant[order]
    return pa.table({
        "transaction_id": pa.array(np.arange(1, n_all + 1, dtype=np.int64)),
        "card_id": pa.array((card + 1).astype(np.int64)),
        "user_id": pa.array((user + 1).astype(np.int64)),
        "merchant_id": pa.array((merchant + 1).astype(np.int64)),
        "amount": pa.array(amount[order]),
        "channel": pa.array(channel[order]),
        "is_fraud": pa.array(fraud[order]),
        "is_chargeback": pa.array(chargeback[order]),
        "chargeback_at": _ts(filed[order], mask=~chargeback[order]),
        "transaction_at": _ts(t),
        "ingested_at": _ts(t + _ingestion_delay(rng, n_all)),
    })


# -- recommendations ---------------------------------------------------------------------------

def _items(rng, n_items):
    names = np.array(list(ITEM_CATEGORIES))
    share, median = (np.array(v) for v in zip(*ITEM_CATEGORIES.values()))
    cat = rng.choice(len(names), n_items, p=share / share.sum())
    price = np.maximum(np.round(median[cat] * np.exp(rng.normal(0, 0.6, n_items)), 2) - 0.01, 0.99)
    new = rng.random(n_items) < 0.15
    listed = np.where(new, rng.uniform(_START, _END - 5 * _D, n_items),
                      _START - rng.uniform(_D, 365 * _D, n_items))
    listed = _ms(listed.astype(np.int64))
    rank = rng.permutation(n_items) + 1
    popularity = (rank + 5.0) ** -1.0 * np.where(new, 3.0, 1.0)  # Zipf-like; new items get a launch boost
    table = pa.table({
        "item_id": pa.array(np.arange(1, n_items + 1, dtype=np.int64)),
        "category": pa.array(names[cat]),
        "price": pa.array(price),
        "listed_at": _ts(listed),
        "created_at": _ts(listed + _ingestion_delay(rng, n_items)),
    })
    facts = {"cat": cat, "n_cats": len(names), "listed": listed, "popularity": popularity,
             "quality": rng.normal(0, 1, n_items), "price": price, "median": median[cat]}
    return table, facts


def _interactions(rng, n_events, u, it):
    n_users, n_items = len(u["signup"]), len(it["listed"])
    # ~1.19 events per view (clicks ~15% of views, purchases ~25% of clicks); ~3.2 views a session
    n_views = int(round(n_events / 1.19))
    views_per_session = 1 + rng.poisson(2.2, max(int(n_views / 3.2 * 1.05), 1))
    views_per_session = views_per_session[np.cumsum(views_per_session) <= n_views]
    n_sessions, n_views = len(views_per_session), int(views_per_session.sum())

    s_user = rng.choice(n_users, n_sessions, p=u["browsing"] / u["browsing"].sum())
    active_from = np.maximum(u["signup"][s_user], _START)
    first_day = (active_from - _START) // _D
    day = first_day + np.floor(rng.random(n_sessions) * (DAYS - first_day)).astype(np.int64)
    s_start = _START + day * _D + _time_of_day(rng, n_sessions, _BROWSING_HOURS)
    s_start = np.maximum(s_start, active_from + _H)

    session = np.repeat(np.arange(n_sessions), views_per_session)
    user = s_user[session]
    first = np.zeros(n_views, dtype=bool)
    first[np.concatenate([[0], np.cumsum(views_per_session)[:-1]])] = True
    gaps = rng.exponential(45 * _S, n_views) + 2 * _S
    gaps[first] = 0
    cum = np.cumsum(gaps)
    t = s_start[session] + (cum - np.repeat(cum[first], views_per_session)).astype(np.int64)

    # items: 60% from the user's favourite category, else anything; by popularity; listed before the view
    fav_cat = rng.integers(0, it["n_cats"], n_users)
    from_fav = rng.random(n_views) < 0.6
    item = np.empty(n_views, dtype=np.int64)
    item[from_fav] = _choice_by_group(rng, fav_cat[user[from_fav]], it["cat"], it["popularity"])
    item[~from_fav] = rng.choice(n_items, (~from_fav).sum(), p=it["popularity"] / it["popularity"].sum())
    unlisted = it["listed"][item] > t
    old = np.flatnonzero(it["listed"] < _START)
    w = it["popularity"][old]
    item[unlisted] = old[rng.choice(old.size, unlisted.sum(), p=w / w.sum())]

    # clicks and purchases
    match = it["cat"][item] == fav_cat[user]
    p_click = _sigmoid(_logit(0.08) + 0.5 * it["quality"][item] + 0.8 * match + u["click_bias"][user])
    clicked = rng.random(n_views) < p_click
    c_idx = np.flatnonzero(clicked)
    c_t = t[c_idx] + (rng.exponential(20 * _S, c_idx.size) + _S).astype(np.int64)
    p_buy = _sigmoid(_logit(0.2) + 0.4 * it["quality"][item[c_idx]]
                     - 0.5 * np.log(it["price"][item[c_idx]] / it["median"][item[c_idx]]))
    p_idx = c_idx[rng.random(c_idx.size) < p_buy]
    p_t = c_t[np.searchsorted(c_idx, p_idx)] + (rng.exponential(180 * _S, p_idx.size) + 5 * _S).astype(np.int64)

    kind = np.concatenate([np.zeros(n_views, np.int8), np.ones(c_idx.size, np.int8), np.full(p_idx.size, 2, np.int8)])
    src = np.concatenate([np.arange(n_views), c_idx, p_idx])
    ev_t = _ms(np.concatenate([t, c_t, p_t]))
    keep = ev_t < _END
    kind, src, ev_t = kind[keep], src[keep], ev_t[keep]
    ev_user, ev_item, ev_session = user[src], item[src], session[src]
    ev_t = _make_unique(ev_user.astype(np.int64) * n_items + ev_item, ev_t)
    order = np.argsort(ev_t, kind="stable")
    n_all = len(ev_t)
    return pa.table({
        "interaction_id": pa.array(np.arange(1, n_all + 1, dtype=np.int64)),
        "session_id": pa.array((ev_session[order] + 1).astype(np.int64)),
        "user_id": pa.array((ev_user[order] + 1).astype(np.int64)),
        "item_id": pa.array((ev_item[order] + 1).astype(np.int64)),
        "interaction_type": pa.array(np.array(["view", "click", "purchase"])[kind[order]]),
        "interaction_at": _ts(ev_t[order]),
        "ingested_at": _ts(ev_t[order] + _ingestion_delay(rng, n_all)),
    })


# -- loading -----------------------------------------------------------------------------------

def write(warehouse: Any, tables: dict[str, pa.Table], schema: str = "raw") -> None:
    """(Re)create each table as schema.<name> in the warehouse (dbt's sources for the demo)."""
    for name, table in tables.items():
        warehouse.replace_table(schema, name, table)
