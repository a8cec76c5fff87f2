//! `headcount keys create|list|revoke`. A key's secret is printed once, on creation,
//! and stored only as a hash.

use super::{CmdResult, open_shared_existing, workspace};
use crate::args::KeysCmd;
use crate::output::table;
use headcount_store::{ApiKey, IpNet, Permission, Store, StoreError, keys};
use std::path::Path;
use std::process::ExitCode;

/// Runs a `keys` subcommand.
pub fn run(dir: &Path, cmd: KeysCmd) -> CmdResult {
    match cmd {
        KeysCmd::Create {
            workspace: ws,
            name,
            permissions,
            allow_ips,
        } => {
            let mut permissions: Vec<Permission> = if permissions.is_empty() {
                Permission::ALL.to_vec()
            } else {
                permissions
                    .iter()
                    .map(|p| p.parse())
                    .collect::<Result<_, _>>()?
            };
            // A repeated permission is stored once (and cannot make a partial key
            // look like one with every permission in `keys list`).
            permissions.sort();
            permissions.dedup();
            let mut unique_ips: Vec<IpNet> = Vec::with_capacity(allow_ips.len());
            for text in &allow_ips {
                let net: IpNet = text.parse()?;
                if !unique_ips.contains(&net) {
                    unique_ips.push(net);
                }
            }
            let allow_ips = unique_ips;
            let store = open_shared_existing(dir)?;
            let ws = workspace(store.as_ref(), dir, &ws)?;
            let secret = create(store.as_ref(), ws.id, &name, permissions, allow_ips)?;
            crate::output::line(secret);
        }
        KeysCmd::List { workspace: only } => {
            let store = open_shared_existing(dir)?;
            let workspaces = store.workspaces()?;
            let only = only
                .map(|name| workspace(store.as_ref(), dir, &name))
                .transpose()?;
            let rows: Vec<Vec<String>> = store
                .keys()?
                .into_iter()
                .filter(|k| only.as_ref().is_none_or(|w| w.id == k.workspace))
                .map(|k| {
                    let ws = workspaces
                        .iter()
                        .find(|w| w.id == k.workspace)
                        .map(|w| w.name.clone());
                    let perms: Vec<&str> = k.permissions.iter().map(|p| p.as_str()).collect();
                    let ips: Vec<String> = k.allow_ips.iter().map(ToString::to_string).collect();
                    vec![
                        k.id,
                        ws.unwrap_or_default(),
                        k.name,
                        if Permission::ALL.iter().all(|p| k.permissions.contains(p)) {
                            "all".into()
                        } else {
                            perms.join(",")
                        },
                        if ips.is_empty() {
                            "any".into()
                        } else {
                            ips.join(",")
                        },
                        k.revoked_at
                            .map_or("active".into(), |t| format!("revoked {t}")),
                    ]
                })
                .collect();
            table(
                &[
                    "ID",
                    "WORKSPACE",
                    "NAME",
                    "PERMISSIONS",
                    "ALLOWED_IPS",
                    "STATUS",
                ],
                &rows,
            );
        }
        KeysCmd::Revoke { id } => {
            let store = open_shared_existing(dir)?;
            let id = keys::public_id(id.trim()).to_string();
            if !store.revoke_key(&id, headcount_service::state::now())? {
                return Err(format!("no active key with id {id} (see headcount keys list)").into());
            }
            eprintln!("revoked key {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates a key and returns its secret (retrying on the rare clash of public ids).
pub fn create(
    store: &dyn Store,
    ws: headcount_model::WorkspaceId,
    name: &str,
    permissions: Vec<Permission>,
    allow_ips: Vec<IpNet>,
) -> Result<String, Box<dyn std::error::Error>> {
    loop {
        let secret =
            keys::generate_secret().map_err(|e| format!("cannot generate a random key: {e}"))?;
        let key = ApiKey {
            id: keys::public_id(&secret).to_string(),
            workspace: ws,
            name: name.to_string(),
            hash: keys::hash_secret(&secret),
            permissions: permissions.clone(),
            allow_ips: allow_ips.clone(),
            created_at: headcount_service::state::now(),
            revoked_at: None,
        };
        match store.insert_key(&key) {
            Ok(()) => return Ok(secret),
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
