//! `--svg`: load on the dependency over time, one line per policy, outages shaded.
//!
//! Drawn with plotters' SVG backend alone: no C libraries and no font files (text is laid
//! out by plotters' built-in estimate and rendered by whatever views the SVG).

use plotters::prelude::*;

use super::report::Report;

const COLORS: [RGBColor; 6] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// The chart as an SVG document.
///
/// # Errors
/// A message if plotters fails to lay the chart out.
pub fn render(report: &Report) -> Result<String, String> {
    let mut out = String::new();
    draw(report, &mut out).map_err(|e| format!("cannot draw the chart: {e}"))?;
    Ok(out)
}

fn draw(report: &Report, out: &mut String) -> Result<(), String> {
    let sample = report.sample.as_secs_f64();
    // Calls still in flight after the last arrival leave a partial tail: draw whole samples
    // up to the end of arrivals only.
    let shown = ((report.duration.as_secs_f64() / sample) as usize).max(1);
    let x_max = shown as f64 * sample;
    let y_peak = report
        .policies
        .iter()
        .flat_map(|p| p.load.iter().take(shown).copied())
        .fold(0.0, f64::max);
    let y_max = (y_peak * 1.1).max(1.0);

    let root = SVGBackend::with_string(out, (1000, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(text)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: load on the dependency", report.title),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(text)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("attempts per second")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(text)?;

    for (i, (start, end)) in report.outages.iter().enumerate() {
        let shade = RGBColor(0xff, 0xc8, 0xc8).mix(0.5).filled();
        let rect = Rectangle::new(
            [(start.as_secs_f64(), 0.0), (end.as_secs_f64(), y_max)],
            shade,
        );
        let series = chart.draw_series(std::iter::once(rect)).map_err(text)?;
        if i == 0 {
            series
                .label("outage")
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], shade));
        }
    }
    for (i, p) in report.policies.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points = p
            .load
            .iter()
            .take(shown)
            .enumerate()
            .map(|(k, v)| (k as f64 * sample, *v));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(text)?
            .label(p.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(text)?;
    root.present().map_err(text)?;
    Ok(())
}

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}
