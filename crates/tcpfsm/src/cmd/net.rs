use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ListenArgs {}

#[derive(clap::Args)]
pub struct ConnectArgs {}

pub fn listen(_args: ListenArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("'listen' is not built yet")
}

pub fn connect(_args: ConnectArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("'connect' is not built yet")
}
