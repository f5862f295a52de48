//! Chat templates against `transformers`: for three tokenizer folders with
//! real template layouts (ChatML, Llama 3, Llama 2), the text and ids
//! shiftlm renders equal `apply_chat_template(…, tokenize=True,
//! add_generation_prompt=True)`'s. Fixtures: `tools/make_chat_fixtures.py`.

use shiftlm::data::chat::{ChatTemplate, Message, Role};
use shiftlm::data::tokenizer::Tokenizer;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chat")
}

fn folder(name: &str) -> (ChatTemplate, Tokenizer) {
    let dir = fixtures().join(name);
    let t = ChatTemplate::from_folder(&dir).unwrap().expect("the fixture has a template");
    (t, Tokenizer::load(&dir.join("tokenizer.json")).unwrap())
}

fn messages(v: &serde_json::Value) -> Vec<Message> {
    serde_json::from_value(v.clone()).unwrap()
}

#[test]
fn prompts_match_transformers_apply_chat_template() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    let folders = expected.as_object().unwrap();
    assert_eq!(folders.len(), 3);
    for (name, cases) in folders {
        let (t, tok) = folder(name);
        for (k, case) in cases.as_array().unwrap().iter().enumerate() {
            let m = messages(&case["messages"]);
            assert_eq!(t.render(&m, true).unwrap(), case["text"].as_str().unwrap(), "{name} #{k}: text");
            let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).unwrap();
            assert_eq!(t.encode_prompt(&tok, &m).unwrap(), want, "{name} #{k}: ids");
        }
    }
}

#[test]
fn training_supervises_each_answer_and_its_end_token() {
    let (t, tok) = folder("llama3");
    let say = |role, c: &str| Message { role, content: c.to_string() };
    let m = [say(Role::System, "Answer briefly."), say(Role::User, "Hello!"), say(Role::Assistant, "Paris.")];
    let (ids, sup) = t.encode_conversation(&tok, &m).unwrap();
    let picked: Vec<u32> = ids.iter().zip(&sup).filter(|(_, s)| **s).map(|(i, _)| *i).collect();
    let mut want = tok.encode("Paris.").unwrap();
    want.push(tok.token_id("<|eot_id|>").unwrap());
    assert_eq!(picked, want);
    // The prompt part is what the model reads before answering.
    let prompt = t.encode_prompt(&tok, &m[..2]).unwrap();
    assert_eq!(&ids[..prompt.len()], &prompt[..]);
    assert!(sup[..prompt.len()].iter().all(|s| !s));
}

#[test]
fn a_template_s_own_refusal_is_reported() {
    let (t, _) = folder("llama2");
    let say = |role, c: &str| Message { role, content: c.to_string() };
    let e = t.render(&[say(Role::User, "a"), say(Role::User, "b")], true).unwrap_err().to_string();
    assert!(e.contains("roles must alternate"), "{e}");
}
