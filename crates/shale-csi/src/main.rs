//! `shale-csi`: the Kubernetes CSI driver of Shale.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use shale_csi::pools::{PoolConfig, Pools};
use shale_csi::{Driver, Mode};

/// Serves Shale volumes to Kubernetes through the CSI spec (v1.8).
#[derive(Parser, Debug)]
#[command(name = "shale-csi", version)]
struct Args {
    /// The socket to serve on.
    #[arg(long, env = "CSI_ENDPOINT", default_value = "unix:///csi/csi.sock")]
    endpoint: String,
    /// This node's id (the Kubernetes node name).
    #[arg(long, env = "NODE_ID")]
    node_id: String,
    /// Which services to serve.
    #[arg(long, value_enum, default_value = "all")]
    mode: Mode,
    /// A pool to serve, `NAME=PATH|URL` (or a bare PATH|URL, named
    /// `default`); repeat for several. The first is the default one.
    #[arg(long = "pool", required = true, value_name = "NAME=PATH|URL")]
    pools: Vec<String>,
    /// With --mode controller or all: create the default pool, if it is
    /// an object-store pool that does not exist yet, with its catalog in
    /// this PostgreSQL database (postgres://USER@HOST[:PORT]/DB; the
    /// password from PGPASSWORD).
    #[arg(long, value_name = "URL", env = "SHALE_CSI_CATALOG")]
    catalog: Option<String>,
    /// The `shale` binary that runs mounts [default: `shale` beside this
    /// binary, else on PATH].
    #[arg(long, value_name = "PATH")]
    shale: Option<PathBuf>,
}

/// `shale` beside this binary, else the one on PATH.
fn shale_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("shale")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("shale"))
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHALE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("shale-csi: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let configs = args
        .pools
        .iter()
        .map(|p| PoolConfig::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let options = shale_core::PoolOptions::from_env()?;
    let driver = Driver {
        socket: shale_csi::socket_path(&args.endpoint).map_err(anyhow::Error::msg)?,
        node_id: args.node_id,
        mode: args.mode,
        pools: Arc::new(
            Pools::new(configs, options).creating_with(
                args.catalog
                    .filter(|c| !c.is_empty() && args.mode != Mode::Node),
            ),
        ),
        shale: args.shale.unwrap_or_else(shale_binary),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(driver.serve())
}
