//! `postage docs`: an AsyncAPI 3.0 document of the running components
//! (`--live`) or of `info` answers saved with `postage ps --json`
//! (`--from FILE`), in YAML or JSON.

use postage::docs::AsyncApi;
use postage::remote::{Destination, Info};

use crate::args::DocsArgs;
use crate::failure::Failure;
use crate::output;

/// Prints the document.
pub(crate) async fn docs(url: Option<&str>, args: DocsArgs) -> Result<(), Failure> {
    let infos = match &args.from {
        Some(path) => saved(path)?,
        None => live(url, &args).await?,
    };
    let document = infos
        .iter()
        .fold(
            AsyncApi::new(&args.title, env!("CARGO_PKG_VERSION")),
            AsyncApi::component,
        )
        .description(format!(
            "{} component(s) as they described themselves.",
            infos.len()
        ))
        .to_value();
    if args.json {
        println!("{}", output::json_text(&document, false));
    } else {
        let yaml = serde_saphyr::to_string(&document)
            .map_err(|error| Failure::connection(format!("cannot write YAML: {error}")))?;
        print!("{yaml}");
    }
    Ok(())
}

async fn live(url: Option<&str>, args: &DocsArgs) -> Result<Vec<Info>, Failure> {
    let destination = Destination::new(args.destination.clone());
    let infos = crate::control::infos(url, &destination, args.wait.timeout).await?;
    if infos.is_empty() {
        return Err(crate::control::nobody(&destination));
    }
    Ok(infos)
}

fn saved(path: &std::path::Path) -> Result<Vec<Info>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| Failure::connection(format!("cannot read {}: {error}", path.display())))?;
    serde_json::from_str(&text).map_err(|error| {
        Failure::connection(format!(
            "{} is not what `postage ps --json` writes: {error}",
            path.display()
        ))
    })
}
