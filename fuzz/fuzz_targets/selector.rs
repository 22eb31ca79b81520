//! Selectors (`type:value`) from text and from a (type, value) pair. Properties: the parser
//! accepts exactly non-empty type (no `:`) and non-empty value without control characters; an
//! accepted selector displays as its input, re-parses equal, and survives serde.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil_types::Selector;

fuzz_target!(|input: (&str, &str)| {
    let (text, value) = input;

    let parsed = text.parse::<Selector>();
    let expected = text
        .split_once(':')
        .is_some_and(|(t, v)| spec_accepts(t, v));
    assert_eq!(parsed.is_ok(), expected, "{text:?}: {parsed:?}");
    if let Ok(selector) = parsed {
        assert_eq!(selector.to_string(), text);
        check(&selector);
    }

    // The pair form (plugins' outputs, proto messages): the type is `text`.
    let built = Selector::new(text, value);
    assert_eq!(
        built.is_ok(),
        spec_accepts(text, value),
        "({text:?}, {value:?}): {built:?}"
    );
    if let Ok(selector) = built {
        assert_eq!(selector.selector_type(), text);
        assert_eq!(selector.value(), value);
        check(&selector);
    }
});

fn check(selector: &Selector) {
    let again: Selector = selector
        .to_string()
        .parse()
        .expect("a displayed selector parses");
    assert_eq!(&again, selector);
    let json = serde_json::to_string(selector).expect("serialises");
    let back: Selector = serde_json::from_str(&json).expect("its JSON deserialises");
    assert_eq!(&back, selector);
}

fn spec_accepts(selector_type: &str, value: &str) -> bool {
    !selector_type.is_empty()
        && !selector_type.contains(':')
        && !value.is_empty()
        && !selector_type
            .chars()
            .chain(value.chars())
            .any(char::is_control)
}
