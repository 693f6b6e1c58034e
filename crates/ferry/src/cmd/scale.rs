//! `ferry scale deploy/NAME --replicas N`.

use clap::Args;
use serde_json::json;

use crate::client::{self, Client, ServerArgs, object_path};
use crate::output::{self, EXIT_OK};

/// Set the replicas of a Deployment, ReplicaSet or StatefulSet.
///
/// The field then belongs to the `ferry-scale` manager: a later `ferry apply` with
/// another replica count is a conflict unless --force-conflicts.
#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// KIND/NAME (e.g. deploy/web), or KIND then NAME.
    pub target: Vec<String>,
    /// The new number of replicas.
    #[arg(long)]
    pub replicas: u32,
    /// Namespace (default: `default`).
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `ferry scale`.
pub fn run(args: ScaleArgs) -> anyhow::Result<u8> {
    let (kind, name) = match args.target.as_slice() {
        [one] => client::target(one, None)?,
        [k, n] => (k.clone(), n.clone()),
        _ => anyhow::bail!("give the object to scale as KIND/NAME, e.g. deploy/web"),
    };
    let ns = args.namespace.as_deref().unwrap_or("default");
    let client = Client::new(&args.server)?;
    let obj = client.put(
        &format!("{}/scale", object_path(ns, &kind, &name)),
        &json!({"spec": {"replicas": args.replicas}}),
    )?;
    output::emit(&format!("{} scaled\n", client::resource_name(&obj)))?;
    Ok(EXIT_OK)
}
