//! The dashboard's chart, drawn on the server as SVG: a month's daily cost as stacked bars
//! (managed, own key) and its daily tokens as a line, each on its own scale. Only numbers go
//! into the markup.

use std::fmt::Write as _;

use store::console::DailyUsage;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 92.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// The days of a month (`YYYY-MM`).
fn days_in(month: &str) -> u32 {
    let (year, month) = month.split_once('-').unwrap_or(("1970", "01"));
    let (year, month): (i32, u32) = (year.parse().unwrap_or(1970), month.parse().unwrap_or(1));
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// The SVG of a month's daily usage.
pub fn daily(month: &str, days: &[DailyUsage]) -> String {
    let count = days_in(month);
    let value = |day: u32| {
        let key = format!("{month}-{day:02}");
        days.iter()
            .find(|d| d.day == key)
            .cloned()
            .unwrap_or_default()
    };
    let max_cost = (1..=count)
        .map(|d| {
            let v = value(d);
            v.managed_micros + v.own_key_micros
        })
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_tokens = (1..=count)
        .map(|d| value(d).tokens)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let slot = plot_width / f64::from(count);
    let bar = (slot * 0.7).max(1.0);
    let y = |fraction: f64| TOP + plot_height * (1.0 - fraction);
    let mut svg = String::new();
    let total: i64 = days
        .iter()
        .map(|d| d.managed_micros + d.own_key_micros)
        .sum();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="Daily cost and tokens in {month}: {} in all">"#,
        store::format_usd(total)
    );
    let _ = write!(
        svg,
        r#"<line class="axis" x1="{LEFT}" y1="{}" x2="{}" y2="{}"/>"#,
        y(0.0),
        WIDTH - RIGHT,
        y(0.0)
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="end">{}</text><text x="{}" y="{}" text-anchor="end">$0</text>"#,
        LEFT - 6.0,
        y(1.0) + 4.0,
        store::format_usd(max_cost as i64),
        LEFT - 6.0,
        y(0.0)
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}">{} tokens</text>"#,
        WIDTH - RIGHT + 6.0,
        y(1.0) + 4.0,
        max_tokens as i64
    );
    let mut line = Vec::new();
    for day in 1..=count {
        let v = value(day);
        let x = LEFT + slot * f64::from(day - 1) + (slot - bar) / 2.0;
        let managed = v.managed_micros as f64 / max_cost;
        let own = v.own_key_micros as f64 / max_cost;
        if v.managed_micros > 0 {
            let _ = write!(
                svg,
                r#"<rect class="managed" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}"><title>{month}-{day:02}: {} managed</title></rect>"#,
                y(managed),
                plot_height * managed,
                store::format_usd(v.managed_micros)
            );
        }
        if v.own_key_micros > 0 {
            let _ = write!(
                svg,
                r#"<rect class="own" x="{x:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}"><title>{month}-{day:02}: {} own key</title></rect>"#,
                y(managed + own),
                plot_height * own,
                store::format_usd(v.own_key_micros)
            );
        }
        line.push(format!(
            "{:.1},{:.1}",
            x + bar / 2.0,
            y(v.tokens as f64 / max_tokens)
        ));
        if day == 1 || day % 5 == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{day}</text>"#,
                x + bar / 2.0,
                HEIGHT - 10.0
            );
        }
    }
    let _ = write!(
        svg,
        r##"<polyline points="{}" fill="none" stroke="#f79009" stroke-width="2"><title>tokens per day</title></polyline>"##,
        line.join(" ")
    );
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_of_bars_and_a_line() {
        let svg = daily(
            "2026-02",
            &[
                DailyUsage {
                    day: "2026-02-03".into(),
                    managed_micros: 2_000,
                    own_key_micros: 1_000,
                    tokens: 900,
                },
                DailyUsage {
                    day: "2026-02-28".into(),
                    managed_micros: 500,
                    own_key_micros: 0,
                    tokens: 100,
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"managed\"").count(), 2);
        assert_eq!(svg.matches("class=\"own\"").count(), 1);
        assert!(svg.contains("2026-02-28"));
        assert!(!svg.contains("2026-02-29"));
        assert_eq!(days_in("2024-02"), 29);
    }
}
