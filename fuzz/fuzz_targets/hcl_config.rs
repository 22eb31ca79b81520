//! SPIRE-format HCL config files (`server.conf`, `agent.conf`) and `plugin_data`. Properties:
//! a refused file gets an error that names the file and, when it names a line, a line of the
//! file; an accepted file's plugins carry `plugin_data` whose HCL text parses back to the same
//! values; `plugin_data` text that parses is rewritten by `to_hcl` to text that parses to the
//! same values, and rewriting that gives the same text again (a fixed point).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_config::{AgentConfig, ConfigError, PluginConfig, PluginData, ServerConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match mode % 3 {
        0 => match ServerConfig::parse(text, "server.conf", false) {
            Ok(config) => {
                let plugins = &config.plugins;
                plugins
                    .node_attestors
                    .iter()
                    .chain(&plugins.bundle_publishers)
                    .for_each(check_plugin);
            }
            Err(e) => check_error(&e, "server.conf", text),
        },
        1 => match AgentConfig::parse(text, "agent.conf", false) {
            Ok(config) => {
                check_plugin(&config.plugins.node_attestor);
                config
                    .plugins
                    .workload_attestors
                    .iter()
                    .for_each(check_plugin);
            }
            Err(e) => check_error(&e, "agent.conf", text),
        },
        _ => {
            if let Ok(data) = PluginData::parse(text) {
                check_data(&data);
            }
        }
    }
});

fn check_error(error: &ConfigError, file: &str, text: &str) {
    let message = error.to_string();
    assert!(
        message.starts_with(file),
        "error does not name the file: {message}"
    );
    if let Some(line) = error.line() {
        // Line numbers count from 1; an error at the end of the text may point just past it.
        let lines = text.split('\n').count();
        assert!(
            (1..=lines + 1).contains(&line),
            "error names line {line} of a {lines}-line file: {message}"
        );
    }
}

fn check_plugin(plugin: &PluginConfig) {
    let reparsed = match PluginData::parse(&plugin.data_text) {
        Ok(data) => data,
        Err(e) => panic!(
            "plugin {}'s data text does not parse: {e}\n{}",
            plugin.name, plugin.data_text
        ),
    };
    assert_eq!(format!("{reparsed:?}"), format!("{:?}", plugin.data));
    check_data(&plugin.data);
}

fn check_data(data: &PluginData) {
    let text = data.to_hcl();
    let again = match PluginData::parse(&text) {
        Ok(again) => again,
        Err(e) => panic!("to_hcl wrote text that does not parse: {e}\n{text}"),
    };
    // Debug, not PartialEq: NaN is not equal to itself, and -0.0 must stay -0.0.
    assert_eq!(
        format!("{again:?}"),
        format!("{data:?}"),
        "values changed:\n{text}"
    );
    assert_eq!(again.to_hcl(), text);
}
