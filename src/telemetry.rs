//! Logging: `tracing` with the original node's `--log-level` syntax, changeable at run time.
//!
//! Syntax: `LEVEL[;LEVEL:topic1,topic2[;…]]`, e.g. `info;trace:store,restapi`. Levels: trace, debug, info,
//! notice (= info), warn, error, fatal (= error), off. Topics are the original's names where we have the
//! same subsystem (`codex`, `node`, `restapi`, `repostore`, `maintenance`, …); any other topic is taken as a
//! tracing target, so `trace:redb` works too.

use crate::config::LogFormat;
use std::io::IsTerminal;
use thiserror::Error;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// A log level string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LogLevelError {
    #[error("empty log level: use e.g. info or info;trace:store")]
    Empty,
    #[error("unknown log level '{0}': use trace, debug, info, notice, warn, error, fatal or off")]
    UnknownLevel(String),
    #[error("bad topic directive '{0}': use LEVEL:topic1,topic2")]
    BadDirective(String),
    #[error("bad topic name '{0}': topics are letters, digits, '_' and '::'")]
    BadTopic(String),
}

/// Parsed log directives, convertible to a tracing filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirectives {
    filter: String,
}

fn level(text: &str) -> Result<&'static str, LogLevelError> {
    Ok(match text.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" | "notice" => "info",
        "warn" | "warning" => "warn",
        "error" | "fatal" => "error",
        "off" | "none" => "off",
        _ => return Err(LogLevelError::UnknownLevel(text.trim().to_owned())),
    })
}

/// The tracing targets behind an original topic name.
fn targets(topic: &str) -> Vec<&str> {
    match topic {
        "codex" => vec!["codex", "codex_actors", "codex_protocol"],
        "node" => vec!["codex_actors::node"],
        "restapi" => vec!["codex::rest"],
        "repostore" | "store" => vec!["codex_actors::store", "codex_actors::upload"],
        "maintenance" => vec!["codex_actors::maintenance"],
        other => vec![other],
    }
}

/// The directive that silences arkworks' constraint-system spans (see [`LogDirectives::env_filter`]).
const R1CS_OFF: &str = "r1cs=off";

impl LogDirectives {
    /// Parses the `--log-level` syntax.
    pub fn parse(text: &str) -> Result<Self, LogLevelError> {
        let mut parts = text.split(';').map(str::trim).filter(|p| !p.is_empty());
        let global = parts.next().ok_or(LogLevelError::Empty)?;
        let mut filter = vec![level(global)?.to_owned()];
        for directive in parts {
            let (lvl, topics) =
                directive.split_once(':').ok_or_else(|| LogLevelError::BadDirective(directive.into()))?;
            let lvl = level(lvl)?;
            for topic in topics.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if !topic.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                    return Err(LogLevelError::BadTopic(topic.into()));
                }
                filter.extend(targets(topic).into_iter().map(|target| format!("{target}={lvl}")));
            }
        }
        Ok(Self { filter: filter.join(",") })
    }

    /// The filter, with arkworks' circuit spans (`r1cs`) always off: its gadgets are instrumented at INFO with
    /// every argument recorded through `Debug`, which made a 1-sample storage proof take over a minute instead
    /// of a fraction of a second under an `info` filter.
    fn env_filter(&self) -> EnvFilter {
        let filter = format!("{},{R1CS_OFF}", self.filter);
        EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(format!("info,{R1CS_OFF}")))
    }
}

/// Changes the log filter of the running node.
#[derive(Clone)]
pub struct LogControl {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
}

impl LogControl {
    /// Applies new directives (from `POST /debug/chronicles/loglevel`).
    pub fn set(&self, directives: &LogDirectives) -> Result<(), reload::Error> {
        match &self.handle {
            Some(handle) => handle.reload(directives.env_filter()),
            None => Ok(()),
        }
    }

    /// A control that changes nothing (tests that do not install a subscriber).
    pub fn detached() -> Self {
        Self { handle: None }
    }
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(directives: &LogDirectives, format: LogFormat) -> LogControl {
    let (filter, handle) = reload::Layer::new(directives.env_filter());
    let output = match format {
        LogFormat::None => None,
        LogFormat::Json => Some(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).boxed()),
        other => {
            let ansi = match other {
                LogFormat::Colors => true,
                LogFormat::Nocolors => false,
                _ => std::io::stderr().is_terminal(),
            };
            Some(tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).boxed())
        }
    };
    let _ = tracing_subscriber::registry().with(filter).with(output).try_init();
    LogControl { handle: Some(handle) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn original_syntax() {
        assert_eq!(LogDirectives::parse("info").map(|d| d.filter), Ok("info".into()));
        assert_eq!(
            LogDirectives::parse("INFO; trace: store,restapi").map(|d| d.filter),
            Ok("info,codex_actors::store=trace,codex_actors::upload=trace,codex::rest=trace".into())
        );
        assert_eq!(LogDirectives::parse("DEBUG;TRACE:codex").map(|d| d.filter.matches("=trace").count()), Ok(3));
        assert_eq!(LogDirectives::parse("notice").map(|d| d.filter), Ok("info".into()));
        assert_eq!(LogDirectives::parse(""), Err(LogLevelError::Empty));
        assert!(matches!(LogDirectives::parse("loud"), Err(LogLevelError::UnknownLevel(_))));
        assert!(matches!(LogDirectives::parse("info;store"), Err(LogLevelError::BadDirective(_))));
        assert!(matches!(LogDirectives::parse("info;trace:st ore"), Err(LogLevelError::BadTopic(_))));
        for text in ["info;trace:store", "error;debug:redb,codex_actors::store"] {
            let directives = LogDirectives::parse(text).expect("valid");
            assert!(EnvFilter::try_new(&directives.filter).is_ok(), "{text}");
        }
    }
}
