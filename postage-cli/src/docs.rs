//! `postage docs`: an AsyncAPI 3.0 document of the running components
//! (`--live`) or of `info` answers saved with `postage ps --json`
//! (`--from FILE`), in YAML or JSON.

use postage::docs::AsyncApi;
use postage::remote::{Destination, Info, Remote};

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
    let connection = output::connect(url).await?;
    let mut remote = Remote::connect(&connection, output::fingerprint()).await?;
    let infos = remote.info(&destination, args.wait.timeout).await;
    remote.close().await;
    let _ = connection.close().await;
    let infos = infos?;
    if infos.is_empty() {
        return Err(Failure::refused(format!(
            "no component answered as {destination}"
        )));
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
