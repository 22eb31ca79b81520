//! What the plugin itself reads from `plugin_data`: only `disable_container_selectors`.
//!
//! The kubelet settings (ports, CA, token, node name, polling) are SPIRE's keys too, but the
//! agent reads and checks them when it builds the `pod-lookup` grant (the kubelet is
//! reached by the host, not by the sandbox), so this parser accepts every other key and
//! skips nested blocks (`sigstore { … }`, `experimental { … }`).

/// The plugin's own settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    /// Pod selectors only: no `container-name`/`container-image`, and a pod found by its
    /// UID suffices before its container status shows the container.
    pub disable_container_selectors: bool,
}

impl Config {
    /// Parse the HCL attribute text the host hands to `configure`.
    pub fn parse(text: &str) -> Result<Config, String> {
        let data = sigil_pdk::config::parse(text)?;
        let disable_container_selectors = match data.get("disable_container_selectors") {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Bool(value)) => *value,
            Some(other) => {
                return Err(format!(
                    "plugin_data: disable_container_selectors must be true or false, not {other}"
                ));
            }
        };
        Ok(Config {
            disable_container_selectors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn empty_data_keeps_container_selectors() {
        assert_eq!(Config::parse(""), Ok(Config::default()));
    }

    #[test]
    fn disable_container_selectors_is_read_and_other_keys_are_left_to_the_host() {
        let text = "kubelet_secure_port = 10250\nskip_kubelet_verification = true\n\
                    sigstore {\n  disable_container_selectors = false\n}\n\
                    disable_container_selectors = true\n";
        assert_eq!(
            Config::parse(text),
            Ok(Config {
                disable_container_selectors: true
            })
        );
    }

    #[test]
    fn a_nested_key_of_the_same_name_is_not_the_setting() {
        let text = "experimental {\n  disable_container_selectors = true\n}\n";
        assert_eq!(Config::parse(text), Ok(Config::default()));
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let error = Config::parse("disable_container_selectors = 1").expect_err("not a bool");
        assert!(error.contains("disable_container_selectors"), "{error}");
        let error = Config::parse("disable_container_selectors = ").expect_err("no value");
        assert!(error.contains("line 1"), "{error}");
    }
}
