//! How the command line is read: dcgm-exporter's (Go's) syntax and the
//! environment, layered onto clap.
//!
//! dcgm-exporter's command line follows Go's flag package: a long option may
//! take one dash (`-collectors`), a boolean takes `=false`. Its options also
//! read variables, one each; Algalon's own `ALGALON_*` variables win over
//! them. clap binds one variable per option and reads an empty one as a
//! value, so the variables are resolved here instead, before clap sees the
//! arguments: an option not on the command line becomes `--long=VALUE` from
//! the first of its variables ([`crate::compat::variables`]) that is set and
//! not empty.

use std::collections::HashMap;
use std::ffi::OsString;

use clap::builder::BoolishValueParser;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

use crate::compat::{DCGM_OPTIONS, Given, Origin, Support, options_with_variables, variables};

/// Where each option given came from, and which set variable it shadowed.
pub(crate) type Origins = HashMap<&'static str, (Origin, Option<&'static str>)>;

/// The clap id of the option with long name `long`.
fn arg_id(cmd: &Command, long: &str) -> Option<clap::Id> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .map(|a| a.get_id().clone())
}

/// Booleans take dcgm-exporter's (Go's) syntax: `--flag` is true and
/// `--flag=false` (or `=0`, `=f`, …) false; each option names its variables
/// in `--help`; `--help` lists the hidden no-effect options by name.
pub(crate) fn decorate(mut cmd: Command) -> Command {
    for long in options_with_variables() {
        let Some(id) = arg_id(&cmd, long) else {
            continue;
        };
        let vars: Vec<_> = variables(long).collect();
        let suffix = format!(" [env: {}]", vars.join(", "));
        cmd = cmd.mut_arg(id, |mut a| {
            if let Some(help) = a.get_help() {
                let help = format!("{help}{suffix}");
                a = a.help(help);
            }
            if let Some(long_help) = a.get_long_help() {
                let long_help = format!("{long_help}\n{}", suffix.trim_start());
                a = a.long_help(long_help);
            }
            if matches!(a.get_action(), ArgAction::SetTrue) {
                a = a
                    .action(ArgAction::Set)
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_value("false")
                    .default_missing_value("true")
                    .value_parser(BoolishValueParser::new())
                    .value_name("BOOL")
                    .hide_default_value(true)
                    .hide_possible_values(true);
            }
            a
        });
    }
    let hidden: Vec<String> = DCGM_OPTIONS
        .iter()
        .filter(|o| matches!(o.support, Support::NoEffect(_)))
        .map(|o| match o.alias {
            Some(a) if a.len() == 1 => format!("-{a}"),
            _ => format!("--{}", o.long),
        })
        .collect();
    let after = cmd
        .get_after_help()
        .map(ToString::to_string)
        .unwrap_or_default();
    cmd.after_help(format!(
        "{after}\nAccepted for dcgm-exporter and logged at start, with no effect here: {} (README, \
         \"Coming from dcgm-exporter\", says why).",
        hidden.join(", ")
    ))
}

/// Go's flag syntax, which dcgm-exporter's command line follows: a long
/// option may take one dash (`-collectors x`, `-rbmn`). Rewritten to two so
/// clap reads it; a token that is the separate value of the option before
/// it is left alone.
pub(crate) fn go_style_args(cmd: &Command, args: Vec<OsString>) -> Vec<OsString> {
    // Options that take their value as the next token.
    let separate_value =
        |a: &clap::Arg| a.get_action().takes_values() && !a.is_require_equals_set();
    let mut longs: HashMap<String, bool> = HashMap::from([("help".to_owned(), false)]);
    let mut shorts: HashMap<char, bool> = HashMap::new();
    for a in cmd.get_arguments() {
        let takes = separate_value(a);
        for name in a
            .get_long()
            .into_iter()
            .chain(a.get_all_aliases().into_iter().flatten())
        {
            longs.insert(name.to_owned(), takes);
        }
        for c in a
            .get_short()
            .into_iter()
            .chain(a.get_all_short_aliases().into_iter().flatten())
        {
            shorts.insert(c, takes);
        }
    }
    let mut out = Vec::with_capacity(args.len());
    let mut rest = args.into_iter();
    out.extend(rest.next());
    let mut value_next = false;
    while let Some(arg) = rest.next() {
        if std::mem::take(&mut value_next) {
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            out.push(arg);
            out.extend(rest);
            break;
        }
        let (dashes, body) = match (text.strip_prefix("--"), text.strip_prefix('-')) {
            (Some(body), _) => (2, body),
            (None, Some(body)) if !body.is_empty() => (1, body),
            _ => {
                out.push(arg);
                continue;
            }
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((name, _)) => (name, true),
            None => (body, false),
        };
        let mut short_chars = name.chars();
        let takes = match (dashes, short_chars.next(), short_chars.next()) {
            (1, Some(c), None) => shorts.get(&c).copied(),
            _ => longs.get(name).copied(),
        };
        value_next = takes == Some(true) && !inline_value;
        if dashes == 1 && name.chars().count() > 1 && longs.contains_key(name) {
            out.push(format!("-{text}").into());
        } else {
            out.push(arg);
        }
    }
    out
}

/// The command-line arguments the environment adds: `--long=VALUE` for each
/// option not on the command line (in `first`, a parse of the command line
/// alone) whose variables hold a non-empty value, the first in
/// [`variables`] order. A value that does not parse is an error naming its
/// variable. Also returns where each option's value comes from.
pub(crate) fn env_args(
    cmd: &Command,
    first: &ArgMatches,
    program: &OsString,
    var: &dyn Fn(&str) -> Option<OsString>,
) -> Result<(Vec<OsString>, Origins), clap::Error> {
    let mut args = Vec::new();
    let mut origins = HashMap::new();
    for long in options_with_variables() {
        let Some(id) = arg_id(cmd, long) else {
            continue;
        };
        let set: Vec<(&'static str, OsString)> = variables(long)
            .filter_map(|name| var(name).filter(|v| !v.is_empty()).map(|v| (name, v)))
            .collect();
        if first.value_source(id.as_str()) == Some(ValueSource::CommandLine) {
            let shadowed = set.first().map(|(name, _)| *name);
            origins.insert(long, (Origin::CommandLine, shadowed));
            continue;
        }
        let Some((name, value)) = set.first() else {
            continue;
        };
        let mut arg = OsString::from(format!("--{long}="));
        arg.push(value);
        if let Err(e) = cmd
            .clone()
            .try_get_matches_from([program.clone(), arg.clone()])
        {
            return Err(clap::Error::raw(
                ErrorKind::InvalidValue,
                format!(
                    "{name}={:?}: {}\n",
                    value.to_string_lossy(),
                    crate::cli::one_line_error(&e)
                ),
            ));
        }
        args.push(arg);
        origins.insert(long, (Origin::Env(name), set.get(1).map(|(n, _)| *n)));
    }
    Ok((args, origins))
}

/// Which dcgm-exporter options the final parse holds, from where, and
/// whether they differ from their defaults.
pub(crate) fn given(cmd: &Command, matches: &ArgMatches, origins: &Origins) -> Vec<Given> {
    let mut out = Vec::new();
    for o in DCGM_OPTIONS {
        let Some(arg) = cmd.get_arguments().find(|a| a.get_long() == Some(o.long)) else {
            continue;
        };
        if matches.value_source(arg.get_id().as_str()) != Some(ValueSource::CommandLine) {
            continue;
        }
        let raw: Vec<_> = matches
            .get_raw(arg.get_id().as_str())
            .map(|v| v.map(ToOwned::to_owned).collect())
            .unwrap_or_default();
        let defaults: Vec<_> = arg.get_default_values().to_vec();
        let (origin, shadowed) = origins
            .get(o.long)
            .copied()
            .unwrap_or((Origin::CommandLine, None));
        out.push(Given {
            long: o.long,
            origin,
            changes_default: raw != defaults,
            shadowed,
        });
    }
    out
}
