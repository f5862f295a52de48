//! Multi-turn conversations for dialogue fine-tuning, and the chat templates
//! that turn them into text.
//!
//! A conversation file is JSONL, one conversation per line, in the format
//! chat models are fine-tuned on:
//!
//! ```text
//! {"messages": [{"role": "system", "content": "Be brief."},
//!               {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}
//! ```
//!
//! A chat template is a Jinja2 template, as Hugging Face keeps it in
//! `tokenizer_config.json` (`chat_template`), rendered with `minijinja` the
//! way `transformers` renders it (`trim_blocks`, `lstrip_blocks`, loop
//! controls, `raise_exception`, Python's string methods). Training supervises
//! the assistant turns only: each turn's text as the template writes it,
//! end token included (see [`ChatTemplate::encode_conversation`]); the shift
//! core then masks everything else.

use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the whole conversation.
    System,
    /// The person.
    User,
    /// The model: the only turns training supervises.
    Assistant,
}

impl Role {
    /// The role's name in the file and in templates.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

/// A conversation and the line of the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// The turns in order.
    pub messages: Vec<Message>,
    /// 1-based line in the file (0 when not read from one).
    pub line: usize,
}

/// Parses one line of a conversation file: `{"messages": [...]}` with a
/// known role and a string content in every message, and at least one
/// assistant turn. The error says what is wrong, for the caller to name the
/// file and line.
pub fn parse_conversation(raw: &str) -> std::result::Result<Vec<Message>, String> {
    let v: Value = serde_json::from_str(raw).map_err(|e| format!("not valid JSON: {e}"))?;
    let list = match v.get("messages") {
        Some(Value::Array(list)) => list,
        Some(_) => return Err("\"messages\" must be a list of messages".into()),
        None => return Err("expected a JSON object with \"messages\": [{\"role\": …, \"content\": …}, …]".into()),
    };
    let mut out = Vec::with_capacity(list.len());
    for (k, m) in list.iter().enumerate() {
        let at = format!("message {}", k + 1);
        let role = match m.get("role") {
            Some(Value::String(r)) => match r.as_str() {
                "system" => Role::System,
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => return Err(format!("{at}: unknown role '{other}' (known: system, user, assistant)")),
            },
            Some(_) => return Err(format!("{at}: \"role\" must be a string")),
            None => return Err(format!("{at}: missing \"role\"")),
        };
        let content = match m.get("content") {
            Some(Value::String(c)) => c.clone(),
            Some(_) => return Err(format!("{at}: \"content\" must be a string")),
            None => return Err(format!("{at}: missing \"content\"")),
        };
        out.push(Message { role, content });
    }
    if !out.iter().any(|m| m.role == Role::Assistant) {
        return Err("the conversation has no assistant turn, so nothing in it would be trained".into());
    }
    Ok(out)
}

/// Reads every conversation of a JSONL file. Blank lines are skipped; any
/// other bad line is an error naming the file and line.
pub fn read_conversations(path: &Path) -> Result<Vec<Conversation>> {
    let text = super::read_utf8(path)?;
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.trim().is_empty() {
            continue;
        }
        let messages =
            parse_conversation(raw).map_err(|msg| Error::BadLine { path: path.to_path_buf(), line: i + 1, msg })?;
        out.push(Conversation { messages, line: i + 1 });
    }
    if out.is_empty() {
        return Err(Error::EmptyFile { path: path.to_path_buf() });
    }
    Ok(out)
}

/// Whether the first non-blank line of `text` is a conversation
/// (`{"messages": …}`), so that a JSONL file is read as dialogue rather than
/// as prompt/response pairs.
pub fn looks_like_conversations(text: &str) -> bool {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    serde_json::from_str::<Value>(first).is_ok_and(|v| v.get("messages").is_some())
}

/// A conversation as ids, and which of them training supervises (the
/// assistant turns; see [`ChatTemplate::encode_conversation`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Dialogue {
    /// The rendered conversation's ids.
    pub ids: Vec<u32>,
    /// One flag per id: part of an assistant turn.
    pub supervised: Vec<bool>,
}

/// A chat template as a run keeps it: the model's, written into every
/// checkpoint's `tokenizer_config.json` whatever data it trains on next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    /// The Jinja2 source.
    pub source: String,
    /// The special tokens' texts by name (`bos_token` → `<s>`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tokens: BTreeMap<String, String>,
}

impl TemplateSpec {
    /// The compiled template.
    pub fn compile(&self) -> Result<ChatTemplate> {
        ChatTemplate::new(&self.source, self.tokens.clone())
    }
}

impl From<&ChatTemplate> for TemplateSpec {
    fn from(t: &ChatTemplate) -> Self {
        Self { source: t.source().to_string(), tokens: t.tokens().clone() }
    }
}

/// Conversations for a language model: the `chat` table of a run's data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatDataConfig {
    /// The JSONL file of conversations.
    pub path: PathBuf,
    /// Validation conversations from this file instead of a hashed
    /// `valid_fraction` of the training ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid: Option<PathBuf>,
    /// Fraction held out for validation, e.g. 0.1 (unused with `valid`).
    pub valid_fraction: f64,
    /// The tokenizer to build (training from scratch) from the rendered
    /// training conversations; the template's special tokens are added.
    pub tokenizer: super::TokenizerKind,
    /// Vocabulary size of a `bpe` or `unigram` tokenizer (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpe_vocab_size: Option<usize>,
    /// The chat template that writes the conversations out (also the
    /// model's: the run config's `chat_template`).
    pub template: TemplateSpec,
}

/// Reads, splits and encodes the conversations of `cfg`; a tokenizer is
/// built from the rendered training conversations unless one is given (a
/// model being fine-tuned, a checkpoint resumed), which must then know the
/// template's special tokens as single tokens.
pub fn load(cfg: &ChatDataConfig, tokenizer: Option<&Tokenizer>) -> Result<(super::Dataset, Tokenizer)> {
    let template = cfg.template.compile()?;
    // Each conversation of the file with its text, rendered once: the text
    // chooses the split and builds (or checks) the tokenizer.
    let mut all = Vec::new();
    for c in read_conversations(&cfg.path)? {
        let text = template.render(&c.messages, false).map_err(|e| Error::BadLine {
            path: cfg.path.clone(),
            line: c.line,
            msg: e.to_string(),
        })?;
        all.push((c, text));
    }
    let (train, valid): (Vec<(Conversation, String)>, Vec<Conversation>) = match &cfg.valid {
        Some(v) => (all, read_conversations(v)?),
        None => {
            let cut = (cfg.valid_fraction.clamp(0.0, 1.0) * 10_000.0) as u64;
            let n = all.len();
            let (mut valid, mut train): (Vec<_>, Vec<_>) =
                all.into_iter().partition(|(_, text)| super::pairs::fnv1a(text) % 10_000 < cut);
            // With two or more conversations, neither side is left empty.
            if n >= 2 && valid.is_empty() {
                valid.push(train.pop().expect("n >= 2"));
            } else if n >= 2 && train.is_empty() {
                train.push(valid.pop().expect("n >= 2"));
            }
            (train, valid.into_iter().map(|(c, _)| c).collect())
        }
    };
    let (train, texts): (Vec<Conversation>, Vec<String>) = train.into_iter().unzip();
    let specials = template.special_tokens();
    let tok = match tokenizer {
        Some(t) => {
            // Only what the conversations actually write must be one token.
            let written = |s: &String| texts.iter().any(|x| x.contains(s.as_str()));
            if let Some(missing) = specials.iter().filter(|s| written(s)).find(|s| t.token_id(s).is_none()) {
                return Err(Error::config(
                    "chat_template",
                    format!(
                        "the template writes {missing}, which the model's tokenizer does not have as one token (a model trained from scratch with --chat-template gets its template's tokens)"
                    ),
                ));
            }
            t.clone()
        }
        None => {
            let refs: Vec<&str> = specials.iter().map(String::as_str).collect();
            super::build_tokenizer(cfg.tokenizer, cfg.bpe_vocab_size, texts.iter())?.with_special_tokens(&refs)?
        }
    };
    let train = encode_all(&template, &tok, &train, &cfg.path)?;
    let valid = encode_all(&template, &tok, &valid, cfg.valid.as_deref().unwrap_or(&cfg.path))?;
    if tokenizer.is_some() {
        super::warn_unknown(&tok, train.iter().chain(&valid).flat_map(|d| &d.ids), &cfg.path);
    }
    Ok((super::Dataset::Chat { train, valid }, tok))
}

/// Each conversation as ids and assistant flags
/// ([`ChatTemplate::encode_conversation`]); an error names its line of `path`.
pub fn encode_all(
    template: &ChatTemplate,
    tok: &Tokenizer,
    conversations: &[Conversation],
    path: &Path,
) -> Result<Vec<Dialogue>> {
    conversations
        .iter()
        .map(|c| {
            let (ids, supervised) = template.encode_conversation(tok, &c.messages).map_err(|e| Error::BadLine {
                path: path.to_path_buf(),
                line: c.line,
                msg: e.to_string(),
            })?;
            Ok(Dialogue { ids, supervised })
        })
        .collect()
}

/// Whether `path` is a JSONL file of conversations: its first non-blank
/// line (within the first 64 KB) is `{"messages": …}`.
pub fn is_conversation_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = Vec::new();
    let read = std::fs::File::open(path).and_then(|f| f.take(64 << 10).read_to_end(&mut head));
    let head = String::from_utf8_lossy(&head);
    if read.is_err() {
        return false;
    }
    // A first conversation longer than what was read: its opening decides.
    let first = head.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let cut = !head[head.find(first).unwrap_or(0)..].contains('\n');
    looks_like_conversations(&head) || (cut && opens_with_messages(first))
}

/// Whether `line` opens a JSON object whose first key is `"messages"`.
fn opens_with_messages(line: &str) -> bool {
    let rest = line.trim_start().strip_prefix('{').map(str::trim_start);
    rest.and_then(|r| r.strip_prefix("\"messages\"")).is_some_and(|r| r.trim_start().starts_with(':'))
}

/// ChatML, the default template of models trained from scratch:
/// `<|im_start|>role\ncontent<|im_end|>\n` per message, and
/// `<|im_start|>assistant\n` to prompt an answer.
pub const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// The special tokens [`CHATML`] writes, added to a tokenizer trained from
/// scratch; the second ends an answer.
pub const CHATML_TOKENS: [&str; 2] = ["<|im_start|>", "<|im_end|>"];

/// The file of a Hugging Face folder that holds the chat template and the
/// special tokens' texts.
pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";

/// The special tokens' texts by name (`bos_token` → `<s>`) in a
/// `tokenizer_config.json` document: a string, or an object with its
/// `content`.
fn tokens_of(v: &Value) -> BTreeMap<String, String> {
    let mut tokens = BTreeMap::new();
    for (key, value) in v.as_object().into_iter().flatten() {
        if !key.ends_with("_token") {
            continue;
        }
        let text = match value {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
        tokens.extend(text.map(|t| (key.clone(), t)));
    }
    tokens
}

/// The special tokens' texts by name (`bos_token` → `<s>`) of a `tokenizer_config.json` file.
pub fn special_tokens(path: &Path) -> Result<BTreeMap<String, String>> {
    let v: Value = serde_json::from_slice(&crate::io::read(path)?)
        .map_err(|e| Error::BadFile { path: path.to_path_buf(), msg: format!("not valid JSON: {e}") })?;
    Ok(tokens_of(&v))
}

/// A compiled chat template and the special tokens it may name
/// (`bos_token`, `eos_token`, …).
pub struct ChatTemplate {
    source: String,
    tokens: BTreeMap<String, String>,
    env: minijinja::Environment<'static>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").field("source", &self.source).field("tokens", &self.tokens).finish()
    }
}

impl Clone for ChatTemplate {
    fn clone(&self) -> Self {
        Self::new(&self.source, self.tokens.clone()).expect("compiled once already")
    }
}

impl PartialEq for ChatTemplate {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.tokens == other.tokens
    }
}

const NAME: &str = "chat_template";

impl ChatTemplate {
    /// Compiles `source`; `tokens` are the special tokens' texts by name
    /// (`bos_token` → `<s>`), which templates read as variables.
    pub fn new(source: &str, tokens: BTreeMap<String, String>) -> Result<Self> {
        let mut env = minijinja::Environment::new();
        // As transformers' environment.
        let syntax = minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build();
        env.set_syntax(syntax.map_err(|e| Error::config(NAME, e.to_string()))?);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |format: String| -> std::result::Result<String, minijinja::Error> {
            let now = jiff::Zoned::now();
            jiff::fmt::strtime::format(format.as_str(), &now)
                .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string()))
        });
        env.add_template_owned(NAME, source.to_string())
            .map_err(|e| Error::config(NAME, format!("not a template minijinja can compile: {e}")))?;
        Ok(Self { source: source.to_string(), tokens, env })
    }

    /// [`CHATML`].
    pub fn chatml() -> Self {
        Self::new(CHATML, BTreeMap::new()).expect("the built-in template compiles")
    }

    /// The template named by `--chat-template`: `chatml`, or a file holding
    /// a Jinja2 template.
    pub fn named(name: &str, tokens: BTreeMap<String, String>) -> Result<Self> {
        if name == "chatml" {
            return Self::new(CHATML, tokens);
        }
        let path = Path::new(name);
        let text = crate::io::read(path)?;
        let text = String::from_utf8(text).map_err(|_| Error::BadFile {
            path: path.to_path_buf(),
            msg: "a chat template must be UTF-8 text".into(),
        })?;
        Self::new(&text, tokens).map_err(|e| Error::BadFile { path: path.to_path_buf(), msg: e.to_string() })
    }

    /// The template of a Hugging Face `tokenizer_config.json`, if it has
    /// one (`chat_template` as a string, or as a list of named templates, of
    /// which `default` is taken), with its special tokens.
    pub fn from_tokenizer_config(path: &Path) -> Result<Option<Self>> {
        let bad = |msg: String| Error::BadFile { path: path.to_path_buf(), msg };
        let v: Value =
            serde_json::from_slice(&crate::io::read(path)?).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let source = match v.get(NAME) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(named)) => {
                let default = named.iter().find(|t| t.get("name").and_then(Value::as_str) == Some("default"));
                match default.and_then(|t| t.get("template")).and_then(Value::as_str) {
                    Some(s) => s.to_string(),
                    None => return Err(bad("\"chat_template\" is a list without a \"default\" template".into())),
                }
            }
            Some(_) => return Err(bad("\"chat_template\" must be a string".into())),
        };
        Self::new(&source, tokens_of(&v)).map(Some).map_err(|e| bad(e.to_string()))
    }

    /// The chat template of a Hugging Face folder: `tokenizer_config.json`'s
    /// `chat_template`, or the `chat_template.jinja` file newer
    /// `transformers` writes beside it (with the config's special tokens);
    /// `None` when the folder has neither.
    pub fn from_folder(dir: &Path) -> Result<Option<Self>> {
        let config = dir.join(TOKENIZER_CONFIG);
        let found = if config.is_file() { Self::from_tokenizer_config(&config)? } else { None };
        let jinja = dir.join("chat_template.jinja");
        match found {
            Some(t) => Ok(Some(t)),
            None if jinja.is_file() => {
                let tokens = if config.is_file() { special_tokens(&config)? } else { BTreeMap::new() };
                Self::named(&jinja.to_string_lossy(), tokens).map(Some)
            }
            None => Ok(None),
        }
    }

    /// The special tokens to add to a tokenizer built for this template:
    /// the `<|name|>` tokens it writes (ChatML's two, Llama 3's), and the
    /// texts of the tokens it names (`bos_token`…) that look like special
    /// tokens (`<…>`).
    pub fn special_tokens(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        // `<|…|>` written in the template (ChatML's, Llama 3's headers…).
        let mut rest = self.source.as_str();
        while let Some(at) = rest.find("<|") {
            rest = &rest[at..];
            let end = rest[2..].find("|>").map(|e| e + 4);
            match end.filter(|&e| rest[2..e - 2].chars().all(|c| c.is_ascii_alphanumeric() || c == '_')) {
                Some(e) => {
                    if e > 4 && !out.iter().any(|t| t == &rest[..e]) {
                        out.push(rest[..e].to_string());
                    }
                    rest = &rest[e..];
                }
                None => rest = &rest[2..],
            }
        }
        for t in self.tokens.values() {
            if t.starts_with('<') && t.ends_with('>') && t.len() > 2 && !out.contains(t) {
                out.push(t.clone());
            }
        }
        out
    }

    /// The template's Jinja2 source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The special tokens' texts by name, as templates see them.
    pub fn tokens(&self) -> &BTreeMap<String, String> {
        &self.tokens
    }

    /// The text of `messages`, followed by the opening of an assistant turn
    /// when `add_generation_prompt`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self.env.get_template(NAME).expect("added in new");
        let mut ctx: BTreeMap<&str, minijinja::Value> =
            self.tokens.iter().map(|(k, v)| (k.as_str(), minijinja::Value::from(v.as_str()))).collect();
        let list: Vec<minijinja::Value> = messages
            .iter()
            .map(|m| minijinja::Value::from_pairs([("role", m.role.as_str()), ("content", m.content.as_str())]))
            .collect();
        ctx.insert("messages", minijinja::Value::from(list));
        ctx.insert("add_generation_prompt", minijinja::Value::from(add_generation_prompt));
        template.render(ctx).map_err(|e| Error::config(NAME, format!("rendering failed: {e}")))
    }

    /// The ids a model reads to answer `messages`: the rendered
    /// conversation with the opening of an assistant turn, as
    /// `transformers`' `apply_chat_template(…, tokenize=True,
    /// add_generation_prompt=True)` gives them.
    pub fn encode_prompt(&self, tok: &Tokenizer, messages: &[Message]) -> Result<Vec<u32>> {
        tok.encode(&self.render(messages, true)?)
    }

    /// The ids of a whole conversation, and for each id whether it belongs
    /// to an assistant turn: the text the template writes for that turn
    /// after its opening (`<|im_start|>assistant\n` in ChatML), end token
    /// included. Each turn's span is found by rendering the conversation up
    /// to it with the generation prompt, and up to its end without; the
    /// template must write every shorter conversation as a prefix of the
    /// longer one (chat templates do), else the error says so. A token is
    /// supervised when it overlaps a span (so an answer's first word is
    /// scored when byte-level BPE joins it to the space before it).
    pub fn encode_conversation(&self, tok: &Tokenizer, messages: &[Message]) -> Result<(Vec<u32>, Vec<bool>)> {
        let full = self.render(messages, false)?;
        let mut spans = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if m.role != Role::Assistant {
                continue;
            }
            let before = self.render(&messages[..i], true)?;
            let after = self.render(&messages[..=i], false)?;
            if !after.starts_with(&before) || !full.starts_with(&after) {
                return Err(Error::config(
                    NAME,
                    format!(
                        "the template does not write the conversation up to turn {} as a prefix of the whole, so \
                         its assistant turns cannot be told apart",
                        i + 1
                    ),
                ));
            }
            spans.push(before.len()..after.len());
        }
        let tokens = tok.encode_with_offsets(&full)?;
        let overlaps = |t: &std::ops::Range<usize>| spans.iter().any(|s| t.start < s.end && t.end > s.start);
        let supervised = tokens.iter().map(|(_, at)| overlaps(at)).collect();
        Ok((tokens.into_iter().map(|(id, _)| id).collect(), supervised))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(turns: &[(Role, &str)]) -> Vec<Message> {
        turns.iter().map(|&(role, c)| Message { role, content: c.to_string() }).collect()
    }

    #[test]
    fn lines_must_be_conversations_with_an_assistant_turn() {
        let ok = r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"#;
        assert_eq!(parse_conversation(ok).unwrap().len(), 2);
        for (line, want) in [
            ("{", "not valid JSON"),
            (r#"{"prompt": "a"}"#, "expected a JSON object with \"messages\""),
            (r#"{"messages": 3}"#, "must be a list"),
            (r#"{"messages": [{"role": "bot", "content": "x"}]}"#, "message 1: unknown role 'bot'"),
            (r#"{"messages": [{"role": "user"}]}"#, "message 1: missing \"content\""),
            (r#"{"messages": [{"role": "user", "content": 5}]}"#, "\"content\" must be a string"),
            (r#"{"messages": [{"role": "user", "content": "x"}]}"#, "no assistant turn"),
        ] {
            let e = parse_conversation(line).unwrap_err();
            assert!(e.contains(want), "{line}: {e}");
        }
        assert!(looks_like_conversations(&format!("\n{ok}\n")));
        assert!(!looks_like_conversations(r#"{"prompt": "a", "response": "b"}"#));
    }

    #[test]
    fn the_file_reader_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.jsonl");
        let ok = r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}"#;
        std::fs::write(&path, format!("{ok}\n\n{ok}\n")).unwrap();
        let convs = read_conversations(&path).unwrap();
        assert_eq!(convs.iter().map(|c| c.line).collect::<Vec<_>>(), [1, 3]);
        std::fs::write(&path, format!("{ok}\n{{\"messages\": [{{\"role\": \"robot\", \"content\": \"\"}}]}}\n"))
            .unwrap();
        let e = read_conversations(&path).unwrap_err().to_string();
        assert!(e.contains("chat.jsonl:2:") && e.contains("unknown role 'robot'"), "{e}");
    }

    #[test]
    fn chatml_renders_and_marks_the_assistant_turns() {
        let t = ChatTemplate::chatml();
        let m = msgs(&[(Role::System, "S"), (Role::User, "hi"), (Role::Assistant, "yo"), (Role::User, "?")]);
        let text = t.render(&m[..3], true).unwrap();
        assert_eq!(
            text,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n<|im_start|>assistant\n"
        );
        let tok = Tokenizer::Byte.with_special_tokens(&CHATML_TOKENS).unwrap();
        let m = msgs(&[(Role::User, "hi"), (Role::Assistant, "yo"), (Role::User, "?"), (Role::Assistant, "ok")]);
        let (ids, sup) = t.encode_conversation(&tok, &m).unwrap();
        let end = tok.token_id("<|im_end|>").unwrap();
        // The supervised tokens, in order: each answer, its end token and newline.
        let picked: Vec<u32> = ids.iter().zip(&sup).filter(|(_, s)| **s).map(|(i, _)| *i).collect();
        let mut want = tok.encode("yo").unwrap();
        want.push(end);
        want.extend(tok.encode("\nok").unwrap());
        want.push(end);
        want.extend(tok.encode("\n").unwrap());
        assert_eq!(picked, want);
        assert_eq!(ids, tok.encode(&t.render(&m, false).unwrap()).unwrap());
    }

    #[test]
    fn a_first_word_joined_to_the_prompt_s_space_is_scored() {
        // Byte-level BPE writes " Paris" as one token that starts on the
        // space the generation prompt ends with.
        let texts: Vec<String> = vec!["user: where?\nassistant: Paris is here\n".to_string(); 50];
        let tok = Tokenizer::train_bpe(&texts, 300).unwrap();
        let plain = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";
        let t = ChatTemplate::new(plain, BTreeMap::new()).unwrap();
        let m = msgs(&[(Role::User, "where?"), (Role::Assistant, "Paris is here")]);
        let (ids, sup) = t.encode_conversation(&tok, &m).unwrap();
        let first = ids.iter().zip(&sup).find(|(_, s)| **s).map(|(i, _)| *i).unwrap();
        assert!(tok.decode(&[first]).unwrap().contains("Paris"), "{:?}", tok.decode(&[first]));
    }

    #[test]
    fn special_tokens_are_the_ones_a_template_writes_or_names() {
        let llama3 = "{% for m in messages %}{{ '<|start_header_id|>' + m.role + '<|end_header_id|>' + m.content + '<|eot_id|>' }}{% endfor %}{{ '<| not one |>' }}";
        let t = ChatTemplate::new(llama3, [("bos_token".to_string(), "<|begin_of_text|>".to_string())].into()).unwrap();
        assert_eq!(t.special_tokens(), ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|begin_of_text|>"]);
        assert_eq!(ChatTemplate::chatml().special_tokens(), CHATML_TOKENS);
    }

    #[test]
    fn a_long_first_conversation_is_still_a_conversation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.jsonl");
        let long = "x".repeat(100_000);
        let line = format!("{{\"messages\": [{{\"role\": \"user\", \"content\": \"{long}\"}}, {{\"role\": \"assistant\", \"content\": \"y\"}}]}}\n");
        std::fs::write(&path, &line).unwrap();
        assert!(is_conversation_file(&path));
        std::fs::write(&path, format!("{{\"text\": \"{long}\"}}\n")).unwrap();
        assert!(!is_conversation_file(&path));
    }

    #[test]
    fn templates_read_special_tokens_and_python_methods() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer_config.json");
        let src = "{{ bos_token }}{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}{{ raise_exception('roles') }}{% endif %}\n  [{{ m.role.upper() }}] {{ m.content.strip() }}{{ eos_token }}\n{% endfor %}";
        let cfg = serde_json::json!({"chat_template": src, "bos_token": "<s>", "eos_token": {"content": "</s>", "lstrip": false}, "model_max_length": 8});
        std::fs::write(&path, cfg.to_string()).unwrap();
        let t = ChatTemplate::from_tokenizer_config(&path).unwrap().unwrap();
        assert_eq!(t.tokens().get("eos_token").map(String::as_str), Some("</s>"));
        let m = msgs(&[(Role::User, " a "), (Role::Assistant, "b")]);
        // trim_blocks and lstrip_blocks, as transformers sets them (Python's
        // jinja2 gives the same).
        assert_eq!(t.render(&m, false).unwrap(), "<s>  [USER] a</s>\n  [ASSISTANT] b</s>\n");
        let e = t.render(&msgs(&[(Role::System, "x")]), false).unwrap_err().to_string();
        assert!(e.contains("roles"), "{e}");
        std::fs::write(&path, r#"{"model_max_length": 8}"#).unwrap();
        assert!(ChatTemplate::from_tokenizer_config(&path).unwrap().is_none());
        std::fs::write(&path, r#"{"chat_template": "{% for %}"}"#).unwrap();
        let e = ChatTemplate::from_tokenizer_config(&path).unwrap_err().to_string();
        assert!(e.contains("tokenizer_config.json") && e.contains("compile"), "{e}");
    }
}
