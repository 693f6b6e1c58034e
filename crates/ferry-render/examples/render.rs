//! Renders a source and prints how many objects it gave and how long it took:
//! `cargo run --release -p ferry-render --example render -- DIR [plain|kustomize|helm] [runs]`.

use std::path::PathBuf;
use std::time::Instant;

use ferry_render::{DirectoryOptions, Format, RenderOptions, render};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("usage: render DIR [FORMAT] [RUNS]")?);
    let format: Format = args.next().as_deref().unwrap_or("auto").parse()?;
    let runs: usize = args.next().as_deref().unwrap_or("5").parse()?;
    let opts = RenderOptions {
        format,
        directory: DirectoryOptions {
            recurse: true,
            ..DirectoryOptions::default()
        },
        ..RenderOptions::default()
    };
    let mut best = f64::INFINITY;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let out = render(&dir, &opts)?;
        let secs = started.elapsed().as_secs_f64();
        best = best.min(secs);
        println!(
            "{} objects ({}) in {:.1} ms",
            out.objects.len(),
            out.format,
            secs * 1e3
        );
    }
    println!("best of {runs}: {:.1} ms", best * 1e3);
    Ok(())
}
