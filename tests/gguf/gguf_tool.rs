//! A stand-in command line for the GGUF module until it is wired into `snrscope` itself, used
//! by `.ci/llama-cpp-check` and the measurements in docs/gguf.md:
//!
//! ```sh
//! cargo run --release --example gguf_tool -- prune IN.gguf OUT.gguf --drop 1,3
//! cargo run --release --example gguf_tool -- snr IN.gguf [MODULE]     # default attn_v
//! cargo run --release --example gguf_tool -- tokenize IN.gguf TEXT_FILE
//! ```

use std::path::PathBuf;

use snrscope::{
    checkpoint::gguf::{GgufModel, Tokenizer, names},
    export::{Inputs, PruneOptions, write_pruned},
    spectrum::snr,
    util::cancel::CancelToken,
};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("prune") if args.len() == 5 && args[3] == "--drop" => {
            let m = GgufModel::open(&PathBuf::from(&args[1]))?;
            let n = m.block_count().ok_or("no block_count")?;
            let drop: Vec<usize> = args[4]
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()?;
            let kept = (0..n).filter(|l| !drop.contains(l)).collect();
            let opts = PruneOptions {
                kept,
                out: PathBuf::from(&args[2]),
                replace: false,
                inputs: Inputs::new(),
            };
            let t = std::time::Instant::now();
            let s = write_pruned(&m, &opts, &mut |_, _| {}, &CancelToken::default())?;
            eprintln!(
                "wrote {} ({} tensors, {} bytes) in {:.3} s",
                s.out.display(),
                s.tensors,
                s.bytes,
                t.elapsed().as_secs_f64()
            );
            for e in &s.edited {
                eprintln!("  {e}");
            }
        }
        Some("snr") if args.len() >= 2 => {
            let m = GgufModel::open(&PathBuf::from(&args[1]))?;
            let module = args.get(2).map_or("attn_v", String::as_str);
            let arch = m.arch().unwrap_or("").to_string();
            let mut ws = snr::SvdWorkspace::default();
            println!("layer\tgguf\ttype\tshape\thf\tsnr_ratio");
            for l in 0..m.block_count().ok_or("no block_count")? {
                let name = format!("blk.{l}.{module}.weight");
                let Some(t) = m.tensor(&name) else { continue };
                let (rows, cols) = (t.info.n_rows() as usize, t.info.row_len() as usize);
                let v = t.to_f64()?;
                let s = snr::matrix_snr(&v, rows, cols, faer::Par::Seq, &mut ws)?;
                println!(
                    "{l}\t{name}\t{}\t{:?}\t{}\t{}",
                    t.info.ggml_type,
                    t.info.shape(),
                    names::hf_name(&arch, &name).unwrap_or_default(),
                    s.snr_ratio
                );
            }
        }
        Some("tokenize") if args.len() == 3 => {
            let m = GgufModel::open(&PathBuf::from(&args[1]))?;
            let tok = Tokenizer::from_model(&m)?;
            let text = std::fs::read_to_string(&args[2])?;
            println!("{:?}", tok.encode(&text));
        }
        _ => {
            return Err(
                "usage: gguf_tool prune IN OUT --drop L,L | snr IN [MODULE] | tokenize IN FILE"
                    .into(),
            );
        }
    }
    Ok(())
}
