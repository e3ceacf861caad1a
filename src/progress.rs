//! Progress of long-running commands (imports, bundles, mirror): one bar style for all,
//! and report lines that print above the bar on a terminal and as plain lines in logs.

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `total` bytes (grow it with `inc_length` as sizes become known).
pub fn bytes_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .expect("valid template"),
    );
    bar
}

/// Prints above the progress bar on a terminal, as plain lines otherwise.
pub fn report(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}
