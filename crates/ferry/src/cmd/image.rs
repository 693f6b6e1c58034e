//! `ferry image …` (being written).

/// Image commands.
#[derive(clap::Subcommand)]
pub enum ImageCmd {
    /// List images in the local store.
    Ls,
}

/// Runs an image command; returns the exit code.
pub fn run(_cmd: ImageCmd) -> anyhow::Result<u8> {
    anyhow::bail!("not built yet")
}
