//! Writes the made-up sample run's page to `DIR/report.html` (default `/tmp/strata-report-sample`),
//! e.g. to try `tools/report-check.sh` before a real run exists.

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "/tmp/strata-report-sample".into());
    std::fs::create_dir_all(&dir)?;
    let path = std::path::Path::new(&dir).join(strata_core::rundir::REPORT);
    std::fs::write(&path, strata_report::render(&strata_report::sample::sample_inputs()))?;
    println!("{}", path.display());
    Ok(())
}
