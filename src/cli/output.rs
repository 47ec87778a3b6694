//! `-o text|json|yaml`, the same on every command that prints (istioctl's and kubectl's flag).

use std::io::Write;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables and lines for people.
    Text,
    Json,
    Yaml,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Output {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The same as `-o json` (kept for scripts written against earlier versions).
    #[arg(short = 'j', long = "json", hide = true)]
    json: bool,
}

impl Output {
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }

    /// JSON or YAML rather than text.
    pub fn structured(&self) -> bool {
        self.format() != Format::Text
    }

    /// Prints `value` as JSON (indented) or YAML; text output is the caller's.
    pub fn print(&self, value: &impl Serialize) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        match self.format() {
            Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(value)?)?,
            Format::Yaml => write!(out, "{}", serde_yaml::to_string(value)?)?,
            Format::Text => anyhow::bail!("text output is printed by each command"),
        }
        Ok(())
    }
}
