//! Load a GPT-2 folder, fine-tune it with LoRA on some text, and generate
//! with the result, through the library alone (no CLI).
//!
//! ```sh
//! cargo run --release --example lora_gpt2                      # the test fixture
//! cargo run --release --example lora_gpt2 -- ./gpt2-folder notes.txt 200
//! ```
//! The folder is a `transformers` GPT-2 folder (`config.json`,
//! `model.safetensors`, `tokenizer.json`) or a shiftlm checkpoint. Only the
//! adapters train; they are also written in PEFT's layout to `RUN/adapter`.

use shiftlm::api::{self, FinetuneJob, GenerateJob};
use shiftlm::config::Freeze;
use shiftlm::nn::lora::LoraConfig;
use shiftlm::train::LossHistory;
use std::path::PathBuf;

fn main() -> shiftlm::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let from =
        PathBuf::from(args.first().map_or(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/export/gpt2"), |s| s));
    let work = std::env::temp_dir().join(format!("shiftlm-example-lora-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| shiftlm::Error::Io { path: work.clone(), source: e })?;
    let data = match args.get(1) {
        Some(p) => PathBuf::from(p),
        None => {
            let path = work.join("notes.txt");
            let line = "To shift is to see the next word from the words before it.\n";
            shiftlm::io::write_atomic(&path, line.repeat(40).as_bytes())?;
            path
        }
    };
    let steps = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100);

    let job = FinetuneJob {
        from,
        adapter: None,
        data,
        steps,
        lr: 2e-2,
        batch_size: Some(8),
        out: work.join("run"),
        // Rank 8 on the attention and MLP projections.
        lora: Some(LoraConfig {
            r: 8,
            alpha: 16.0,
            targets: ["c_attn", "c_proj", "c_fc"].map(String::from).to_vec(),
            dropout: 0.0,
        }),
        freeze: Freeze::default(),
        precision: Default::default(), // f32
        chat_template: None,           // text, not conversations
    };
    let mut losses = LossHistory::default();
    let r = api::finetune(&job, &mut losses)?;
    let (first, last) = (losses.0.first().copied().unwrap_or(f32::NAN), losses.0.last().copied().unwrap_or(f32::NAN));
    println!("training loss {first:.4} → {last:.4} over {} steps", losses.0.len());
    let adapter = r.adapter.as_ref().map_or("-".into(), |d| d.display().to_string());
    println!("{} trainable parameters; adapter in {adapter}", r.trainable_parameters);
    if let (Some(b), Some(a)) = (&r.before, &r.after) {
        println!("held-out loss {:.4} → {:.4} (perplexity {:.2} → {:.2})", b.loss, a.loss, b.perplexity, a.perplexity);
    }

    let mut gen = GenerateJob::new(&r.run, vec!["To shift".into()]);
    gen.max_new_tokens = 40;
    gen.temperature = Some(0.0); // greedy
    let out = api::generate(&gen, &mut |_| {})?;
    println!("{}{}", out[0].input, out[0].text);
    std::fs::remove_dir_all(&work).ok();
    Ok(())
}
