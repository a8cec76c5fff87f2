//! Charts as SVG drawn on the server: the daily-size chart of one or more segments
//! (each day a focusable group whose `<title>` and tooltip give the date and the
//! exact sizes), the table of the same numbers, and the list's sparklines.

use headcount_model::Day;
use maud::{Markup, html};
use std::fmt::Write;

/// One line of a chart: a name and its points, oldest first.
pub struct Series<'a> {
    /// The segment's name.
    pub name: &'a str,
    /// Its daily sizes, oldest first.
    pub points: &'a [(Day, u64)],
}

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 32.0;
/// How many series a chart shows at most (one colour each).
pub const MAX_SERIES: usize = 6;

/// A round upper bound of the axis and its step, for gridlines at every step.
fn axis(max: u64) -> (u64, u64) {
    let raw = max.max(1).div_ceil(4);
    let mut magnitude = 1u64;
    while magnitude.saturating_mul(10) <= raw {
        magnitude *= 10;
    }
    let step = [10, 20, 25, 50, 100]
        .iter()
        .map(|m| m * magnitude / 10)
        .find(|s| *s >= raw)
        .unwrap_or(raw);
    (step * 4, step)
}

/// The label of a day: its date, and "today" for the live one.
fn day_label(day: Day, today: Day) -> String {
    if day == today {
        format!("{day} (today, so far)")
    } else {
        day.to_string()
    }
}

/// The chart of `series` (sharing their days, the first series' days on the x axis);
/// `today` is the day whose size is live.
pub fn chart(series: &[Series<'_>], today: Day, caption: &str) -> Markup {
    let days: Vec<Day> = series
        .first()
        .map(|s| s.points.iter().map(|p| p.0).collect())
        .unwrap_or_default();
    let n = days.len().max(1);
    let max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .max()
        .unwrap_or(0);
    let (top, step) = axis(max);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / n as f64;
    let x = |i: usize| LEFT + slot * (i as f64 + 0.5);
    let y = |v: u64| TOP + plot_h * (1.0 - v as f64 / top as f64);
    let ticks: Vec<u64> = (0..=4).map(|k| k * step).collect();
    let label_every = n.div_ceil(5).max(1);
    let lines: Vec<String> = series
        .iter()
        .map(|s| {
            let mut points = String::with_capacity(s.points.len() * 14);
            for (i, (_, v)) in s.points.iter().enumerate() {
                let _ = write!(points, "{:.1},{:.1} ", x(i), y(*v));
            }
            points
        })
        .collect();
    html! {
        figure.chart {
            figcaption { (caption) }
            @if series.len() > 1 {
                ul.legend {
                    @for (k, s) in series.iter().enumerate() {
                        li { span class={"swatch s" (k)} aria-hidden="true" {} (s.name) }
                    }
                }
            }
            svg viewBox={"0 0 " (WIDTH) " " (HEIGHT)} role="group" aria-label=(caption) {
                @for t in &ticks {
                    line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(*t)) y2=(y(*t)) {}
                    text.axis x=(LEFT - 6.0) y=(y(*t) + 4.0) text-anchor="end" { (t) }
                }
                @for (i, day) in days.iter().enumerate() {
                    @if (i % label_every == 0 && i + label_every / 2 < days.len()) || i + 1 == days.len() {
                        text.axis x=(x(i)) y=(HEIGHT - 10.0)
                            text-anchor=(if i == 0 { "start" } else if i + 1 == days.len() { "end" } else { "middle" }) {
                            (day.to_string()[5..])
                        }
                    }
                }
                @for (k, points) in lines.iter().enumerate() {
                    polyline class={"line s" (k)} points=(points) {}
                }
                @for (i, day) in days.iter().enumerate() {
                    @let sizes: Vec<u64> = series.iter().map(|s| s.points.get(i).map_or(0, |p| p.1)).collect();
                    @let label = point_label(series, &sizes, *day, today);
                    @let right = x(i) > WIDTH / 2.0;
                    g.day tabindex="0" role="img" aria-label=(label) data-day=(day.to_string())
                        data-sizes=(sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(",")) {
                        title { (label) }
                        rect.hit x=(x(i) - slot / 2.0) y=(TOP) width=(slot) height=(plot_h) {}
                        @for (k, v) in sizes.iter().enumerate() {
                            circle class={"dot s" (k)} cx=(x(i)) cy=(y(*v)) r="3" {}
                        }
                        text.tip x=(if right { x(i) - 8.0 } else { x(i) + 8.0 }) y=(TOP + 14.0)
                            text-anchor=(if right { "end" } else { "start" }) {
                            tspan x=(if right { x(i) - 8.0 } else { x(i) + 8.0 }) { (day_label(*day, today)) }
                            @for (k, v) in sizes.iter().enumerate() {
                                tspan x=(if right { x(i) - 8.0 } else { x(i) + 8.0 }) dy="16" {
                                    @if series.len() > 1 { (series[k].name) ": " }
                                    (v)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn point_label(series: &[Series<'_>], sizes: &[u64], day: Day, today: Day) -> String {
    let day = day_label(day, today);
    if series.len() == 1 {
        return format!("{day}: {}", sizes.first().copied().unwrap_or(0));
    }
    let parts: Vec<String> = series
        .iter()
        .zip(sizes)
        .map(|(s, v)| format!("{} {v}", s.name))
        .collect();
    format!("{day}: {}", parts.join(", "))
}

/// The same numbers as a table, newest day first.
pub fn table(series: &[Series<'_>], today: Day, caption: &str) -> Markup {
    let days: Vec<Day> = series
        .first()
        .map(|s| s.points.iter().map(|p| p.0).collect())
        .unwrap_or_default();
    html! {
        div.scroll.days-box tabindex="0" role="region" aria-label=(caption) {
            table.days {
                caption { (caption) }
                thead {
                    tr {
                        th scope="col" { "Date" }
                        @for s in series { th scope="col" { (s.name) } }
                    }
                }
                tbody {
                    @for (i, day) in days.iter().enumerate().rev() {
                        tr data-day=(day.to_string()) {
                            th scope="row" {
                                time datetime=(day.to_string()) { (day.to_string()) }
                                @if *day == today { " " span.badge { "today, so far" } }
                            }
                            @for s in series {
                                td.num { (s.points.get(i).map_or(0, |p| p.1)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A small trend line of `points`, labelled with its first and last sizes.
pub fn sparkline(points: &[(Day, u64)]) -> Markup {
    let (w, h) = (120.0, 28.0);
    let max = points.iter().map(|p| p.1).max().unwrap_or(0).max(1) as f64;
    let n = points.len().max(2) - 1;
    let mut line = String::with_capacity(points.len() * 12);
    for (i, (_, v)) in points.iter().enumerate() {
        let px = 1.0 + (w - 2.0) * i as f64 / n as f64;
        let py = 1.0 + (h - 2.0) * (1.0 - *v as f64 / max);
        let _ = write!(line, "{px:.1},{py:.1} ");
    }
    let label = match (points.first(), points.last()) {
        (Some(first), Some(last)) => format!(
            "From {} on {} to {} on {}",
            first.1, first.0, last.1, last.0
        ),
        _ => "No data".to_string(),
    };
    html! {
        svg.spark viewBox={"0 0 " (w) " " (h)} role="img" aria-label=(label) {
            title { (label) }
            polyline points=(line) {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_bounds_are_round_and_above_the_maximum() {
        assert_eq!(axis(0), (4, 1));
        assert_eq!(axis(7), (8, 2));
        assert_eq!(axis(1234), (2000, 500));
        assert_eq!(axis(100_000), (100_000, 25_000));
    }
}
