//! `ferry events`: what happened to runtime objects, oldest first.

use clap::Args;
use serde_json::Value;

use crate::client::{Client, NamespaceArgs, ServerArgs, enc};
use crate::cmd::get::event_row;
use crate::output::{self, EXIT_OK, Format};

/// List events (`LAST SEEN TYPE REASON OBJECT MESSAGE`), oldest first.
#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    pub ns: NamespaceArgs,
    /// Only the events of one object, KIND/NAME (e.g. deploy/web, pod/web-abc12).
    #[arg(long = "for", value_name = "KIND/NAME")]
    pub for_object: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Runs `ferry events`.
pub fn run(args: EventsArgs) -> anyhow::Result<u8> {
    let client = Client::new(&args.server)?;
    let mut q = Vec::new();
    if !args.ns.all_namespaces {
        q.push(format!("namespace={}", enc(args.ns.ns())));
    }
    if let Some(o) = &args.for_object {
        q.push(format!("object={}", enc(o)));
    }
    let list = client.get(&format!("/api/v1/events?{}", q.join("&")))?;
    if args.output != Format::Table {
        output::print_data(&list, args.output)?;
        return Ok(EXIT_OK);
    }
    let items = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items.is_empty() {
        if args.ns.all_namespaces {
            eprintln!("No events found.");
        } else {
            eprintln!("No events found in {} namespace.", args.ns.ns());
        }
        return Ok(EXIT_OK);
    }
    let mut headers = vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"];
    if args.ns.all_namespaces {
        headers.insert(0, "NAMESPACE");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|e| {
            let mut r = event_row(e);
            if args.ns.all_namespaces {
                r.insert(0, crate::client::s(e, "/metadata/namespace").to_string());
            }
            r
        })
        .collect();
    output::emit(&output::table(&headers, &rows))?;
    Ok(EXIT_OK)
}
