//! The `unix` plugin's configuration: SPIRE's `plugin_data` keys, HCL attribute syntax.

/// What `plugin_data` may set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    /// Emit `path:` and `sha256:` selectors for the process's executable.
    pub discover_workload_path: bool,
}

impl Config {
    /// Parse `key = value` lines; blank lines and `#` or `//` comments are skipped.
    /// Unknown keys and malformed values are errors naming the line.
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut config = Config::default();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with("//") {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!(
                    "plugin_data line {}: expected `key = value`",
                    number + 1
                ));
            };
            match key.trim() {
                "discover_workload_path" => {
                    config.discover_workload_path = match value.trim() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(format!(
                                "plugin_data line {}: discover_workload_path must be true or false, not {other:?}",
                                number + 1
                            ));
                        }
                    };
                }
                other => {
                    return Err(format!(
                        "plugin_data line {}: unknown key {other:?}",
                        number + 1
                    ));
                }
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn empty_config_is_the_default() {
        assert_eq!(Config::parse(""), Ok(Config::default()));
    }

    #[test]
    fn discover_workload_path_parses() {
        let config = Config::parse("# unix\ndiscover_workload_path = true\n");
        assert_eq!(
            config,
            Ok(Config {
                discover_workload_path: true
            })
        );
    }

    #[test]
    fn unknown_key_and_bad_value_are_refused() {
        assert!(Config::parse("discover = true").is_err_and(|e| e.contains("unknown key")));
        assert!(
            Config::parse("discover_workload_path = yes")
                .is_err_and(|e| e.contains("true or false"))
        );
        assert!(Config::parse("discover_workload_path").is_err_and(|e| e.contains("line 1")));
    }
}
