//! Chatting with a language model: a conversation kept turn by turn,
//! written out by the model's chat template, each answer streamed as it is
//! sampled and stopped at the template's end token.
//!
//! ```no_run
//! use shiftlm::api::chat::{Chat, ChatOptions};
//!
//! let ck = shiftlm::checkpoint::load("runs/chat".as_ref(), &candle_core::Device::Cpu)?;
//! let mut chat = Chat::new(&ck, ChatOptions::default())?;
//! chat.set_system("Answer briefly.");
//! let answer = chat.reply("What is 2 plus 3?", &mut |piece| print!("{piece}"))?;
//! # Ok::<(), shiftlm::Error>(())
//! ```

use super::generate::Stream;
use crate::checkpoint::Loaded;
use crate::data::chat::{ChatTemplate, Message, Role};
use crate::decode::causal::SampleOptions;
use crate::error::{Error, Result};
use candle_core::Device;

/// How answers are sampled.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    /// Most tokens of one answer, e.g. 200.
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    pub temperature: f32,
    /// Keep only the k most likely tokens (0: all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p (1: all).
    pub top_p: f32,
    /// Above 1, discourages tokens already in the context (1: off).
    pub repetition_penalty: f32,
    /// Seed of the first answer's sampler; answer k uses `seed + k`, so a
    /// conversation replays the same way.
    pub seed: u64,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self { max_new_tokens: 200, temperature: 0.8, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0 }
    }
}

/// A conversation with a loaded language model.
pub struct Chat<'a> {
    ck: &'a Loaded,
    template: ChatTemplate,
    /// How answers are sampled, and the ids that end them ([`answer_ends`]);
    /// answer k is seeded with `seed + k`.
    sample: SampleOptions,
    /// The system message (first), then the turns.
    messages: Vec<Message>,
    /// The text that closes an assistant turn when the template writes no
    /// special token there (`\n\n` after `ASSISTANT: …`): answers stop at
    /// it, and it is not part of the answer.
    closing: Option<String>,
    answers: u64,
}

/// One answer and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The answer's text.
    pub text: String,
    /// Its ids (the stop token included, if one ended it).
    pub ids: Vec<u32>,
    /// The prompt's length in tokens (after cropping).
    pub prompt_tokens: usize,
    /// Turns left out of the prompt, oldest first, to fit the context (the
    /// conversation itself keeps them).
    pub cropped_turns: usize,
}

impl<'a> Chat<'a> {
    /// A new conversation with `ck`, which must be a language model with a
    /// chat template (its run's, or its folder's `tokenizer_config.json`).
    pub fn new(ck: &'a Loaded, options: ChatOptions) -> Result<Self> {
        let template = ck.chat_template()?.ok_or_else(|| Error::Checkpoint {
            path: ck.dir.clone(),
            msg: "has no chat template (tokenizer_config.json's chat_template): fine-tune it on conversations first, with --chat-template chatml|FILE, or pass --chat-template here".into(),
        })?;
        Self::with_template(ck, template, options)
    }

    /// [`Chat::new`] with `template` instead of the model's own (a model
    /// that has none, or to compare templates).
    pub fn with_template(ck: &'a Loaded, template: ChatTemplate, options: ChatOptions) -> Result<Self> {
        if !ck.config.model.is_causal() {
            return Err(Error::Checkpoint {
                path: ck.dir.clone(),
                msg: "is not a language model: chat needs a GPT or Llama".into(),
            });
        }
        let (stop, closing) = answer_ends(&template, &ck.tokenizer, ck.config.model_eos())?;
        let sample = SampleOptions {
            max_new_tokens: options.max_new_tokens,
            temperature: options.temperature,
            top_k: options.top_k,
            top_p: options.top_p,
            repetition_penalty: options.repetition_penalty,
            stop,
            seed: options.seed,
        };
        sample.validate()?;
        Ok(Self { ck, template, sample, messages: Vec::new(), closing, answers: 0 })
    }

    /// The conversation so far.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// Sets (or, when empty, removes) the system message.
    pub fn set_system(&mut self, text: &str) {
        if self.messages.first().is_some_and(|m| m.role == Role::System) {
            self.messages.remove(0);
        }
        if !text.is_empty() {
            self.messages.insert(0, Message { role: Role::System, content: text.to_string() });
        }
    }

    /// Forgets the turns, keeping the system message.
    pub fn reset(&mut self) {
        self.messages.retain(|m| m.role == Role::System);
    }

    /// Adds the user's `text`, answers it (streaming whole characters to
    /// `on_text`) and keeps the answer in the conversation.
    pub fn reply(&mut self, text: &str, on_text: &mut dyn FnMut(&str)) -> Result<Answer> {
        self.messages.push(Message { role: Role::User, content: text.to_string() });
        match self.answer(on_text) {
            Ok(a) => {
                self.messages.push(Message { role: Role::Assistant, content: a.text.clone() });
                Ok(a)
            }
            Err(e) => {
                self.messages.pop();
                Err(e)
            }
        }
    }

    /// Answers a whole conversation given at once (its last turn the
    /// user's), leaving this chat's own conversation as it was.
    pub fn answer_conversation(&mut self, messages: Vec<Message>) -> Result<Answer> {
        let kept = std::mem::replace(&mut self.messages, messages);
        let a = self.answer(&mut |_| {});
        self.messages = kept;
        a
    }

    /// The prompt for the conversation as it stands, cropped from the
    /// oldest turns (never the system message, never the last turn) until
    /// it leaves room for an answer in the context; then the answer.
    fn answer(&mut self, on_text: &mut dyn FnMut(&str)) -> Result<Answer> {
        let ctx = self.ck.config.model.context().unwrap_or(usize::MAX);
        let room = self.sample.max_new_tokens.min(ctx / 2);
        let system = usize::from(self.messages.first().is_some_and(|m| m.role == Role::System));
        let view = |skip: usize| -> Vec<Message> {
            self.messages[..system].iter().chain(&self.messages[system + skip..]).cloned().collect()
        };
        let mut skip = 0;
        let mut prompt = self.template.encode_prompt(&self.ck.tokenizer, &self.messages)?;
        while prompt.len() + room > ctx && self.messages.len() > system + skip + 1 {
            // The oldest turn goes, and an answer left first goes with it.
            skip += 1;
            if self.messages.len() > system + skip + 1 && self.messages[system + skip].role == Role::Assistant {
                skip += 1;
            }
            prompt = self.template.encode_prompt(&self.ck.tokenizer, &view(skip))?;
        }
        let o = SampleOptions { seed: self.sample.seed.wrapping_add(self.answers), ..self.sample.clone() };
        self.answers += 1;
        let tok = &self.ck.tokenizer;
        let mut stream = Stream::default();
        // The answer so far, and how much of it went to `on_text`: text that
        // may be the start of the closing text waits until it is not.
        let (mut text, mut shown, mut closed) = (String::new(), 0, false);
        let closing = self.closing.as_deref().unwrap_or("");
        let ids = crate::decode::causal::generate(&self.ck.model, &prompt, &o, &Device::Cpu, |id| {
            if o.stop.contains(&id) {
                return Ok(false);
            }
            let Some(fresh) = stream.push(tok, id)? else { return Ok(false) };
            text += &fresh;
            if !closing.is_empty() {
                if let Some(at) = text.find(closing) {
                    text.truncate(at);
                    on_text(&text[shown.min(at)..]);
                    shown = at;
                    closed = true;
                    return Ok(true);
                }
            }
            let hold = (1..closing.len().min(text.len() + 1))
                .rev()
                .find(|&k| closing.is_char_boundary(k) && text.ends_with(&closing[..k]))
                .unwrap_or(0);
            let upto = text.len() - hold;
            if upto > shown {
                on_text(&text[shown..upto]);
                shown = upto;
            }
            Ok(false)
        })?;
        if !closed {
            if let Some(tail) = stream.finish(tok)? {
                text += &tail;
            }
        }
        if text.len() > shown {
            on_text(&text[shown..]);
        }
        Ok(Answer { text, ids, prompt_tokens: prompt.len(), cropped_turns: skip })
    }
}

/// How an answer ends: the ids that stop it (the template's special tokens,
/// the `eos_token` it names, the model's end of text, and a closing that is
/// a special token) and the plain text that closes a turn, if any (`\n\n`),
/// at which an answer stops too.
pub(crate) fn answer_ends(
    template: &ChatTemplate,
    tok: &crate::data::Tokenizer,
    eos: u32,
) -> Result<(Vec<u32>, Option<String>)> {
    let mut stop: Vec<u32> = template.special_tokens().iter().filter_map(|t| tok.token_id(t)).collect();
    stop.push(eos);
    stop.extend(template.tokens().get("eos_token").and_then(|t| tok.token_id(t)));
    let mut closing = closing_text(template)?;
    if let Some(c) = closing.clone() {
        // A closing the tokenizer reads as one special token (Llama 3's
        // `<|eot_id|>` where the config names another eos_token): its id stops.
        let first = tok.encode(&c)?.first().copied();
        if let Some(id) = first.filter(|&id| tok.decode(&[id]).is_ok_and(|t| t.is_empty())) {
            stop.push(id);
            closing = None;
        } else if c.chars().all(|ch| ch == ' ' || ch == '\t') {
            // Spaces alone would end every answer at its first word.
            closing = None;
        }
    }
    stop.sort_unstable();
    stop.dedup();
    Ok((stop, closing))
}

/// What `template` writes after an assistant turn's content when that is
/// plain text (no special token of its own): the turn's closing, at which
/// an answer stops. `None` when a special token closes the turn (its id
/// stops the answer) or nothing does.
fn closing_text(template: &ChatTemplate) -> Result<Option<String>> {
    const MARK: &str = "\u{1}";
    let turn = |role, content: &str| Message { role, content: content.to_string() };
    let text = template.render(&[turn(Role::User, "hi"), turn(Role::Assistant, MARK)], false)?;
    let Some(at) = text.rfind(MARK) else { return Ok(None) };
    let after = &text[at + MARK.len()..];
    if after.is_empty() || template.special_tokens().iter().any(|t| after.contains(t.as_str())) {
        return Ok(None);
    }
    Ok(Some(after.to_string()))
}

/// The conversation as one JSONL line, `{"messages": […]}`, as conversation
/// files hold them.
pub fn to_jsonl(messages: &[Message]) -> String {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        messages: &'a [Message],
    }
    serde_json::to_string(&Line { messages }).expect("messages serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_closes_with_a_special_token_or_with_plain_text() {
        assert_eq!(closing_text(&ChatTemplate::chatml()).unwrap(), None);
        let plain = "{% for m in messages %}{{ m.role | upper }}:\n{{ m.content }}\n\n{% endfor %}";
        let t = ChatTemplate::new(plain, Default::default()).unwrap();
        assert_eq!(closing_text(&t).unwrap().as_deref(), Some("\n\n"));
        let tokens = [("eos_token".to_string(), "</s>".to_string())].into();
        let llama2 = "{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]{% else %} {{ m.content }} {{ eos_token }}{% endif %}{% endfor %}";
        let t = ChatTemplate::new(llama2, tokens).unwrap();
        assert_eq!(closing_text(&t).unwrap(), None);
    }
}
