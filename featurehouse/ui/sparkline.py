"""A view's materializer lag over time as a small SVG line, from its lag history (online/history.py):
between two syncs the lag grows by the second and drops to zero at each sync, so a sync's point is
drawn as its peak (`before`) and its drop (`after`); the stream consumer's points are its measured lag.
The SLO is a dashed line, the live lag the last point. Text, no script; the numbers are in its title."""

from __future__ import annotations

from xml.sax.saxutils import escape

from featurehouse.online.history import LagSample
from featurehouse.serving.vectors import human_duration

WIDTH, HEIGHT, PAD = 240, 44, 3
BUCKETS = WIDTH // 4  # a line of at most 2 points per 4 pixels


def lag_points(samples: list[LagSample] | tuple[LagSample, ...], now_s: float | None,
               live_lag: float | None) -> list[tuple[float, float]]:
    """(epoch second, lag seconds) in time order: each sample's peak and drop, then the live lag."""
    points: list[tuple[float, float]] = []
    for s in samples:
        if s.before is not None:
            points.append((s.at, s.before))
        points.append((s.at, s.after))
    if now_s is not None and live_lag is not None and (not points or now_s >= points[-1][0]):
        points.append((now_s, live_lag))
    return points


def thinned(points: list[tuple[float, float]], buckets: int = BUCKETS) -> list[tuple[float, float]]:
    """At most two points per one of `buckets` equal spans of time, the lowest and the highest in time order,
    and the last point: the line a reader sees at this width, drawn from a tenth of the points."""
    if len(points) <= 2 * buckets:
        return points
    t0, span = points[0][0], (points[-1][0] - points[0][0]) or 1.0
    groups: dict[int, list[tuple[float, float]]] = {}
    for point in points[:-1]:
        groups.setdefault(min(buckets - 1, int((point[0] - t0) / span * buckets)), []).append(point)
    out = []
    for group in groups.values():
        low, high = min(group, key=lambda p: p[1]), max(group, key=lambda p: p[1])
        out += sorted({low, high}, key=group.index)
    return out + [points[-1]]


def sparkline_svg(points: list[tuple[float, float]], slo_s: float | None, label: str) -> str:
    """An SVG of the points (empty string: fewer than two points, nothing to draw)."""
    if len(points) < 2:
        return ""
    count = len(points)
    points = thinned(points)
    t0, t1 = points[0][0], points[-1][0]
    worst = max(lag for _, lag in points)
    # the SLO is drawn when it is within 4x the highest lag: a 1-day SLO over seconds of lag would flatten the
    # line the reader came to see (the title still gives it)
    shown_slo = slo_s if slo_s and (not worst or slo_s <= 4 * worst) else None
    top = max(worst, shown_slo or 0.0) * 1.1 or 1.0
    span = (t1 - t0) or 1.0

    def xy(t: float, lag: float) -> str:
        x = PAD + (t - t0) / span * (WIDTH - 2 * PAD)
        y = HEIGHT - PAD - lag / top * (HEIGHT - 2 * PAD)
        return f"{x:.1f},{y:.1f}"

    title = (f"{label}: {count} points over {human_duration(span)}, highest {human_duration(worst)}, "
             f"now {human_duration(points[-1][1])}")
    if slo_s:
        title += f"; SLO {human_duration(slo_s)}" + ("" if shown_slo else ", far above, not drawn")
    slo = ""
    if shown_slo:
        y = HEIGHT - PAD - shown_slo / top * (HEIGHT - 2 * PAD)
        slo = f'<line class="slo" x1="{PAD}" x2="{WIDTH - PAD}" y1="{y:.1f}" y2="{y:.1f}"/>'
    breach = " over" if slo_s and points[-1][1] > slo_s else ""
    return (f'<svg class="sparkline{breach}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'width="{WIDTH}" height="{HEIGHT}" role="img"><title>{escape(title)}</title>{slo}'
            f'<polyline points="{" ".join(xy(t, lag) for t, lag in points)}"/></svg>')
