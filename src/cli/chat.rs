//! `shiftlm chat`

use anyhow::Context;
use shiftlm::api::chat::{to_jsonl, Chat, ChatOptions};
use shiftlm::data::chat::{parse_conversation, Message, Role};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

pub const LONG_ABOUT: &str = "Chat with a language model trained or fine-tuned on conversations.

The conversation is written out by the model's chat template (its
tokenizer_config.json's chat_template: ChatML for models trained from scratch
on conversations, the folder's own for Hugging Face models), each answer is
streamed as it is sampled and ends at the template's end token. The history
is kept; when it no longer fits the model's context (with room for an answer),
the oldest turns are left out of the prompt first (the system message never;
/save still writes them all).

At the prompt:
  /reset          forget the conversation (the system message stays)
  /system TEXT    set the system message (/system alone removes it)
  /save FILE      write the conversation as one JSONL line, {\"messages\": […]}
                  (the format `train` and `finetune` read); an existing file is kept
  /quit           leave (as does end of input, Ctrl-D)

With standard input not a terminal, each line is the user's next message and
each answer is printed on its own line. With --json, each line of standard
input is a whole conversation, {\"messages\": […]} ending with the user's turn,
and each answer is printed as one JSON line: the conversation with the answer
appended, the answer and its token ids.

Examples:
  shiftlm chat --checkpoint runs/gpt-baby-chat
  shiftlm chat --checkpoint runs/gpt-baby-chat --system \"Answer briefly.\" --temperature 0.5
  shiftlm chat --checkpoint ./llama-hf-folder --temperature 0 --max-new-tokens 100
  shiftlm chat --checkpoint runs/gpt-baby-chat --json < conversations.jsonl > answers.jsonl
  shiftlm chat --checkpoint runs/gpt-baby-input --chat-template plain.jinja   # no template of its own";

#[derive(clap::Args, Debug)]
pub struct ChatArgs {
    /// Run folder (newest complete checkpoint), a checkpoint-<step> folder, or a Hugging
    /// Face GPT-2/Llama folder whose tokenizer_config.json has a chat_template.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The system message to start with.
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Write the conversation with this template instead of the model's own: chatml or a
    /// FILE holding a Jinja2 template (for a model without one, or to try another).
    #[arg(long, value_name = "chatml|FILE")]
    pub chat_template: Option<String>,
    /// Most new tokens of one answer.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.8, value_name = "T")]
    pub temperature: f32,
    /// Sample only from the K most likely tokens (0: all).
    #[arg(long, default_value_t = 0, value_name = "K")]
    pub top_k: usize,
    /// Sample only from the most likely tokens that together reach probability P.
    #[arg(long, default_value_t = 1.0, value_name = "P")]
    pub top_p: f32,
    /// Penalise tokens already in the context (> 1; 1 is off).
    #[arg(long, default_value_t = 1.0, value_name = "R")]
    pub repetition_penalty: f32,
    /// Seed for sampling; answer k of a session uses seed + k.
    #[arg(long, default_value_t = 0, value_name = "S")]
    pub seed: u64,
    /// Read one conversation per line from standard input ({"messages": […]}) and print
    /// each answer as one JSON line, for scripts.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: ChatArgs) -> anyhow::Result<()> {
    let ck = shiftlm::checkpoint::load(&a.checkpoint, &candle_core::Device::Cpu)
        .with_context(|| format!("loading {}", a.checkpoint.display()))?;
    let options = ChatOptions {
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        repetition_penalty: a.repetition_penalty,
        seed: a.seed,
    };
    let mut chat = match &a.chat_template {
        Some(name) => {
            let template = shiftlm::data::chat::ChatTemplate::named(name, ck.template_tokens()?)?;
            Chat::with_template(&ck, template, options)?
        }
        None => Chat::new(&ck, options)?,
    };
    if let Some(s) = &a.system {
        chat.set_system(s);
    }
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if a.json {
        if terminal {
            anyhow::bail!(
                "--json reads conversations from standard input, one {{\"messages\": […]}} per line: pipe them in"
            );
        }
        return answer_lines(&mut chat, stdin.lock(), a.system.as_deref());
    }
    if terminal {
        eprintln!(
            "chatting with {} (context {} tokens); /reset, /system TEXT, /save FILE, /quit",
            ck.dir.display(),
            ck.config.model.context().unwrap_or(0)
        );
    }
    let mut out = std::io::stdout();
    let mut lines = stdin.lock().lines();
    loop {
        if terminal {
            eprint!("you> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("reading standard input")?;
        let text = line.trim_end_matches('\r');
        match command(text) {
            Some(("/quit" | "/exit", _)) => break,
            Some(("/reset", _)) => {
                chat.reset();
                eprintln!("(conversation forgotten)");
            }
            Some(("/system", rest)) => {
                chat.set_system(rest);
                eprintln!("{}", if rest.is_empty() { "(system message removed)" } else { "(system message set)" });
            }
            Some(("/save", file)) => match save(file, chat.messages()) {
                Ok(()) => eprintln!("(saved to {file})"),
                // The chat goes on: nothing is lost.
                Err(e) => eprintln!("error: {}", super::report(&e)),
            },
            Some((other, _)) => eprintln!("unknown command {other}: /reset, /system TEXT, /save FILE, /quit"),
            None if text.trim().is_empty() => {}
            None => {
                // The first failed write (a closed pipe) is reported once the answer ends.
                let mut failed = None;
                let answer = chat.reply(text, &mut |piece| {
                    if failed.is_none() {
                        failed = out.write_all(piece.as_bytes()).and_then(|_| out.flush()).err();
                    }
                })?;
                if let Some(e) = failed {
                    return Err(e).context("writing the answer to standard output");
                }
                writeln!(out)?;
                if terminal && answer.cropped_turns > 0 {
                    eprintln!("({} oldest turns left out of the prompt to fit the context)", answer.cropped_turns);
                }
            }
        }
    }
    Ok(())
}

/// `/word rest` → (`/word`, `rest`); `None` for anything else.
fn command(text: &str) -> Option<(&str, &str)> {
    let t = text.trim();
    if !t.starts_with('/') {
        return None;
    }
    Some(match t.split_once(char::is_whitespace) {
        Some((c, rest)) => (c, rest.trim()),
        None => (t, ""),
    })
}

/// `/save FILE`: the conversation as one JSONL line, never over a file.
fn save(file: &str, messages: &[shiftlm::data::chat::Message]) -> anyhow::Result<()> {
    if file.is_empty() {
        anyhow::bail!("/save needs a file name");
    }
    let path = Path::new(file);
    if path.exists() {
        anyhow::bail!("{file} already exists: /save to another file (nothing was written)");
    }
    shiftlm::io::write_atomic(path, format!("{}\n", to_jsonl(messages)).as_bytes())?;
    Ok(())
}

/// `--json`: one conversation per input line, one JSON answer per output line.
/// `--system` goes first in a conversation that has no system message.
fn answer_lines(chat: &mut Chat, input: impl BufRead, system: Option<&str>) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    for (i, line) in input.lines().enumerate() {
        let line = line.context("reading standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let mut messages = parse_conversation_to_answer(&line).map_err(|msg| shiftlm::Error::BadLine {
            path: PathBuf::from("<stdin>"),
            line: i + 1,
            msg,
        })?;
        if let Some(s) = system.filter(|_| messages.first().is_none_or(|m| m.role != Role::System)) {
            messages.insert(0, Message { role: Role::System, content: s.to_string() });
        }
        let answer = chat.answer_conversation(messages.clone())?;
        messages.push(Message { role: Role::Assistant, content: answer.text.clone() });
        #[derive(serde::Serialize)]
        struct Line<'a> {
            messages: &'a [shiftlm::data::chat::Message],
            answer: &'a str,
            ids: &'a [u32],
            prompt_tokens: usize,
            cropped_turns: usize,
        }
        let line = Line {
            messages: &messages,
            answer: &answer.text,
            ids: &answer.ids,
            prompt_tokens: answer.prompt_tokens,
            cropped_turns: answer.cropped_turns,
        };
        writeln!(out, "{}", serde_json::to_string(&line)?)?;
        out.flush()?;
    }
    Ok(())
}

/// A conversation to answer: valid messages, the last one the user's.
fn parse_conversation_to_answer(line: &str) -> Result<Vec<shiftlm::data::chat::Message>, String> {
    // The file reader wants an assistant turn to train on; here the answer
    // is what is asked for, so check the messages without that rule.
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let mut probe = v.clone();
    if let Some(list) = probe.get_mut("messages").and_then(|m| m.as_array_mut()) {
        list.push(serde_json::json!({"role": "assistant", "content": ""}));
    }
    let mut messages = parse_conversation(&probe.to_string())?;
    messages.pop();
    match messages.last() {
        Some(m) if m.role == shiftlm::data::chat::Role::User => Ok(messages),
        _ => Err("the conversation must end with the user's turn, which the model answers".into()),
    }
}
