//! `ikago-dist OUT`: writes the man pages and shell completions of the packaged binaries into
//! the directory OUT (see the library's documentation); scripts/package.sh runs it

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: ikago-dist OUT_DIR");
        return ExitCode::from(2);
    };
    match ikago_dist::generate(&PathBuf::from(out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ikago-dist: {e}");
            ExitCode::FAILURE
        }
    }
}
