//! Progress of long vault jobs on stderr: a bar when stderr is a terminal, else a plain line
//! (done/total, rate, ETA) at most once a second and once at the end, for logs and cron.
//! The library measures ([`Progress`]); this only shows it.

use std::io::{self, IsTerminal as _};
use std::time::{Duration, Instant};

use credvault::store::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// At most one plain progress line per this much time.
const LINE_INTERVAL: Duration = Duration::from_secs(1);
/// The bar's layout: the job, the bar, then the same text a plain line shows (within 80
/// columns for a million records).
const BAR_TEMPLATE: &str = "{prefix}: [{bar:20}] {msg}";
/// How often the bar may be redrawn, per second.
const BAR_REFRESH_HZ: u8 = 10;

/// Shows one job's progress on stderr.
#[derive(Debug)]
pub(crate) struct ProgressDisplay {
    /// What the job is (`reencrypt`), first on each line.
    job: &'static str,
    /// What it counts (`records`).
    unit: &'static str,
    target: Target,
}

#[derive(Debug)]
enum Target {
    Bar(ProgressBar),
    Lines {
        last_line: Instant,
        /// The latest snapshot not printed yet (printed by `finish`).
        pending: Option<Progress>,
    },
}

impl ProgressDisplay {
    /// A bar if stderr is a terminal, else plain lines.
    pub(crate) fn stderr(job: &'static str, unit: &'static str) -> Self {
        let target = if io::stderr().is_terminal() {
            let style = ProgressStyle::with_template(BAR_TEMPLATE)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = ProgressBar::with_draw_target(
                Some(0),
                ProgressDrawTarget::stderr_with_hz(BAR_REFRESH_HZ),
            )
            .with_style(style)
            .with_prefix(job);
            Target::Bar(bar)
        } else {
            Target::Lines {
                last_line: Instant::now(),
                pending: None,
            }
        };
        Self { job, unit, target }
    }

    /// Shows a snapshot (the library calls this after every batch).
    pub(crate) fn update(&mut self, p: Progress) {
        let text = describe(&p, self.unit);
        match &mut self.target {
            Target::Bar(bar) => {
                // An unknown total (0) shows as an empty bar; the text says how far it got.
                bar.set_length(p.total.max(p.done));
                bar.set_position(p.done);
                bar.set_message(text);
            }
            Target::Lines { last_line, pending } => {
                if last_line.elapsed() >= LINE_INTERVAL {
                    *last_line = Instant::now();
                    *pending = None;
                    eprintln!("credvault: {}: {text}", self.job);
                } else {
                    *pending = Some(p);
                }
            }
        }
    }

    /// Ends the display before the result is printed: clears the bar, or prints the last
    /// snapshot if it was held back.
    pub(crate) fn finish(self) {
        match self.target {
            Target::Bar(bar) => bar.finish_and_clear(),
            Target::Lines {
                pending: Some(p), ..
            } => eprintln!("credvault: {}: {}", self.job, describe(&p, self.unit)),
            Target::Lines { pending: None, .. } => {}
        }
    }
}

/// `1500/10000 records (15%), 1500/s, ETA 6s`; without a known total `1500 records, 1500/s`.
fn describe(p: &Progress, unit: &str) -> String {
    let rate = p.rate();
    if p.total == 0 {
        return format!("{} {unit}, {rate:.0}/s", p.done);
    }
    let eta = p
        .eta()
        .map_or_else(|| "unknown".to_owned(), |d| format!("{}s", d.as_secs()));
    format!(
        "{}/{} {unit} ({:.0}%), {rate:.0}/s, ETA {eta}",
        p.done,
        p.total,
        p.fraction() * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_done_of_total_rate_and_eta() {
        let p = Progress::new(250, 1_000, Duration::from_secs(5));
        assert_eq!(
            describe(&p, "records"),
            "250/1000 records (25%), 50/s, ETA 15s"
        );
    }

    #[test]
    fn a_line_without_a_total_says_only_done_and_rate() {
        let p = Progress::new(300, 0, Duration::from_secs(3));
        assert_eq!(describe(&p, "values"), "300 values, 100/s");
    }
}
