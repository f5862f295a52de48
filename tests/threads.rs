//! Results do not depend on the thread count: the fused ops split work into
//! blocks of a fixed size and add partial sums in block order, and the
//! matrix products split only rows and columns, never the inner sum. A GPT
//! and an LSTM seq2seq train bit-identically on 1, 2 and 3 threads.

use shiftlm::config::RunConfig;
use shiftlm::train::{LossHistory, Trainer};

/// Losses of a few training steps and the final weights, on `threads`.
fn train_on(preset: &str, threads: usize, text: Option<&std::path::Path>) -> (Vec<f32>, Vec<Vec<f32>>) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut rc = RunConfig::preset(preset).unwrap();
        rc.train.steps = 6;
        rc.train.eval_every = 0;
        if let (Some(path), shiftlm::config::DataConfig::Text(t)) = (text, &mut rc.data) {
            t.paths = vec![path.to_path_buf()];
            t.tokenizer = shiftlm::config::TokenizerKind::Byte;
        }
        let (data, tok) = shiftlm::data::load(&rc.data, rc.train.seed, None).unwrap();
        rc.model.set_vocab_size(tok.vocab_size());
        let mut t = Trainer::new(rc, data, tok, None).unwrap();
        let mut losses = LossHistory::default();
        t.run(&mut losses).unwrap();
        let weights = t
            .store
            .vars()
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap())
            .collect();
        (losses.0, weights)
    })
}

#[test]
fn training_is_bit_identical_across_thread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("play.txt");
    std::fs::write(
        &text,
        "It is the east, and Juliet is the sun. Arise, fair sun, and kill the envious moon. ".repeat(8),
    )
    .unwrap();
    for (preset, text) in [("gpt-tiny", Some(text.as_path())), ("tiny", None)] {
        let one = train_on(preset, 1, text);
        assert!(one.0.iter().all(|l| l.is_finite()) && one.0.len() == 6, "{preset}: {:?}", one.0);
        for threads in [2, 3] {
            let other = train_on(preset, threads, text);
            assert_eq!(one.0, other.0, "{preset}: losses on 1 and {threads} threads");
            assert!(one.1 == other.1, "{preset}: weights on 1 and {threads} threads differ");
        }
    }
}
