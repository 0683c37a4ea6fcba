//! `keras-tch`: the command line. Each subcommand is a thin wrapper over the library.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "keras-tch",
    version,
    about = "Keras's residual-network notebooks on libtorch: same graphs, same names, same numbers",
    long_about = "Keras's residual-network notebooks on libtorch: same graphs, same names, same numbers.\n\n\
                  Run `scripts/setup.sh` once first (it installs HDF5 and assembles libtorch)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: the course notebook's flow on the course data (or the default dataset)
    Demo(DemoArgs),
    /// Show the libtorch build, the devices it sees and the datasets this checkout finds
    Info(CommonArgs),
}

#[derive(Args)]
struct CommonArgs {
    /// Where to compute: auto (CUDA when available, else CPU), cpu, cuda or cuda:N
    #[arg(long, default_value = "auto")]
    device: String,
    /// Repository root holding datasets/ (defaults to the current directory)
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => keras_tch::demo::run(&args.common.root, &args.common.device),
        Command::Info(args) => keras_tch::demo::info(&args.root, &args.device),
    }
}
