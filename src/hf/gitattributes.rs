//! `.gitattributes`, read as git reads it, for the one attribute Airlock acts on: whether
//! `filter=lfs` applies to a path (which files a preupload sends through LFS).
//!
//! Git's rules (gitattributes(5), wildmatch with `WM_PATHNAME`): a pattern without `/`
//! matches the file name at any depth; one with a `/` (leading or inside) is anchored at
//! the root; `*`, `?` and `[...]` never match `/`; `**/`, `/**/` and `/**` match any
//! number of directories; other `**` are plain `*`; `\` escapes. Later lines win; `-filter`,
//! `!filter` or another driver undo an earlier `filter=lfs`. Lines longer than 2048 bytes
//! are ignored as git ignores them, and so are `!`-negated and `dir/` patterns (which git
//! refuses or never applies to files).
//!
//! Matching simulates the pattern as an NFA over a set of positions: O(|pattern|·|path|)
//! steps per pair, never the exponential backtracking of a recursive matcher.

/// Git ignores attribute lines longer than this (`ATTR_MAX_LINE_LENGTH`).
const MAX_LINE: usize = 2048;

/// The rules of one `.gitattributes` file that say something about `filter`.
#[derive(Debug, Default)]
pub struct Attributes {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    glob: Glob,
    /// The file name only (no `/` in the pattern), or the whole path.
    basename: bool,
    lfs: bool,
}

impl Attributes {
    pub fn parse(text: &str) -> Attributes {
        let rules = text
            .lines()
            .filter(|line| line.len() <= MAX_LINE)
            .filter_map(Rule::parse)
            .collect();
        Attributes { rules }
    }

    /// Whether the last rule that matches `path` and names `filter` sets it to `lfs`.
    pub fn is_lfs(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        self.rules
            .iter()
            .rev()
            .find(|r| r.glob.matches(if r.basename { name } else { path }))
            .is_some_and(|r| r.lfs)
    }

    /// An upper bound of the matching steps `is_lfs` takes on a path of `path_len` bytes.
    pub fn cost(&self, path_len: usize) -> u64 {
        let steps: u64 = self
            .rules
            .iter()
            .map(|r| r.glob.tokens.len() as u64 + 1)
            .sum();
        steps * (path_len as u64 + 1)
    }
}

impl Rule {
    fn parse(line: &str) -> Option<Rule> {
        let mut words = line.split_ascii_whitespace();
        let pattern = words.next()?;
        if pattern.starts_with('#') || pattern.starts_with('!') || pattern.ends_with('/') {
            return None;
        }
        let lfs = words.fold(None, |state, attr| match attr {
            "filter=lfs" => Some(true),
            "-filter" | "!filter" | "filter" => Some(false),
            a if a.starts_with("filter=") => Some(false),
            _ => state,
        })?;
        let basename = !pattern.contains('/');
        let glob = Glob::compile(pattern.strip_prefix('/').unwrap_or(pattern));
        Some(Rule {
            glob,
            basename,
            lfs,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    /// `?`
    One,
    /// `[...]`: ranges (a single char is `(c, c)`), negated.
    Class(Vec<(char, char)>, bool),
    /// `*`: any run without `/`.
    Star,
    /// `**` between slashes: any run, `/` included.
    AnyPath,
    /// Where a `**/` starts: consumes nothing (see `Glob::skip_dirs`).
    Dirs,
}

/// A compiled wildmatch pattern.
#[derive(Debug)]
pub struct Glob {
    tokens: Vec<Token>,
    /// Positions `i` (a `Dirs`) from which the NFA may also jump to `i + 3`, past the
    /// `**/` (which then matches no directory at all).
    skip_dirs: Vec<bool>,
    /// A bracket never closed: git's wildmatch then matches nothing.
    broken: bool,
}

impl Glob {
    pub fn compile(pattern: &str) -> Glob {
        let p: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut skip_dirs = Vec::new();
        let mut broken = false;
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                '*' => {
                    let start = i;
                    while i < p.len() && p[i] == '*' {
                        i += 1;
                    }
                    let at_segment_start = start == 0 || p[start - 1] == '/';
                    let at_segment_end = i == p.len() || p[i] == '/';
                    if i - start >= 2 && at_segment_start && at_segment_end {
                        if i < p.len() {
                            // `**/`: zero directories (jump past the `/`), or any run
                            // ending in `/`.
                            tokens.extend([Token::Dirs, Token::AnyPath, Token::Char('/')]);
                            skip_dirs.extend([true, false, false]);
                            i += 1;
                        } else {
                            tokens.push(Token::AnyPath);
                            skip_dirs.push(false);
                        }
                    } else if tokens.last() != Some(&Token::Star) {
                        skip_dirs.push(false);
                        tokens.push(Token::Star);
                    }
                    continue;
                }
                '?' => tokens.push(Token::One),
                '\\' if i + 1 < p.len() => {
                    i += 1;
                    tokens.push(Token::Char(p[i]));
                }
                '[' => match class(&p, i) {
                    Some((token, end)) => {
                        tokens.push(token);
                        i = end;
                    }
                    None => {
                        broken = true;
                        break;
                    }
                },
                c => tokens.push(Token::Char(c)),
            }
            skip_dirs.push(false);
            i += 1;
        }
        Glob {
            tokens,
            skip_dirs,
            broken,
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.broken {
            return false;
        }
        let n = self.tokens.len();
        let mut now = vec![false; n + 1];
        let mut next = vec![false; n + 1];
        now[0] = true;
        self.close(&mut now);
        for c in text.chars() {
            next.iter_mut().for_each(|s| *s = false);
            let mut any = false;
            for (i, token) in self.tokens.iter().enumerate() {
                if !now[i] {
                    continue;
                }
                let (stay, advance) = match token {
                    Token::Char(t) => (false, *t == c),
                    Token::One => (false, c != '/'),
                    Token::Class(ranges, negated) => (
                        false,
                        c != '/'
                            && ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated,
                    ),
                    Token::Star => (c != '/', false),
                    Token::AnyPath => (true, false),
                    Token::Dirs => (false, false),
                };
                next[i] |= stay;
                next[i + 1] |= advance;
                any |= stay || advance;
            }
            if !any {
                return false;
            }
            std::mem::swap(&mut now, &mut next);
            self.close(&mut now);
        }
        now[n]
    }

    /// Adds the positions reachable without consuming a character (a star matching
    /// nothing, `**/` matching no directory). One forward pass: every jump goes forward.
    fn close(&self, states: &mut [bool]) {
        for i in 0..self.tokens.len() {
            if !states[i] {
                continue;
            }
            if matches!(self.tokens[i], Token::Star | Token::AnyPath | Token::Dirs) {
                states[i + 1] = true;
            }
            if self.skip_dirs[i] {
                states[i + 3] = true;
            }
        }
    }
}

/// The bracket expression starting at `p[start] == '['`: the token and the index of its `]`.
fn class(p: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start + 1;
    let negated = matches!(p.get(i), Some('!') | Some('^'));
    if negated {
        i += 1;
    }
    let first = i;
    let mut ranges = Vec::new();
    loop {
        let mut c = *p.get(i)?;
        if c == ']' && i > first {
            return Some((Token::Class(ranges, negated), i));
        }
        if c == '\\' {
            i += 1;
            c = *p.get(i)?;
        }
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|e| *e != ']') {
            let mut hi = p[i + 2];
            i += 2;
            if hi == '\\' {
                i += 1;
                hi = *p.get(i)?;
            }
            ranges.push((c, hi));
        } else {
            ranges.push((c, c));
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str, t: &str) -> bool {
        Glob::compile(p).matches(t)
    }

    #[test]
    fn wildmatch_with_pathname() {
        assert!(glob("*.bin", "model.bin"));
        assert!(!glob("*.bin", "dir/model.bin"), "* does not cross /");
        assert!(glob("dir/*.bin", "dir/model.bin"));
        assert!(!glob("dir/*.bin", "dir/sub/model.bin"));
        assert!(glob("**/x.bin", "x.bin"));
        assert!(glob("**/x.bin", "a/b/x.bin"));
        assert!(glob("a/**/b", "a/b"));
        assert!(glob("a/**/b", "a/x/y/b"));
        assert!(!glob("a/**/b", "ab"));
        assert!(glob("a/**", "a/x/y"));
        assert!(!glob("a/**", "a"));
        assert!(glob("a**b", "axxb"), "** inside a segment is *");
        assert!(!glob("a**b", "a/b"));
        assert!(glob("?.txt", "a.txt"));
        assert!(!glob("a?b", "a/b"));
        assert!(glob("[a-c]x", "bx"));
        assert!(!glob("[!a-c]x", "bx"));
        assert!(glob("[^a-c]x", "dx"));
        assert!(glob("[]]x", "]x"));
        assert!(!glob("[a/]x", "/x"), "a class never matches /");
        assert!(
            !glob("[ab", "[ab"),
            "an unclosed bracket matches nothing, as in git"
        );
        assert!(glob("\\*x", "*x"));
        assert!(!glob("\\*x", "ax"));
        assert!(glob("*", ""));
        assert!(!glob("?", ""));
        assert!(glob("*tfevents*", "events.out.tfevents.123"));
    }

    #[test]
    fn basename_or_anchored() {
        let a = Attributes::parse("*.bin filter=lfs\n/top.dat filter=lfs\nsub/*.txt filter=lfs\n");
        assert!(a.is_lfs("x.bin"));
        assert!(a.is_lfs("deep/dir/x.bin"), "no / in the pattern: any depth");
        assert!(a.is_lfs("top.dat"));
        assert!(!a.is_lfs("sub/top.dat"), "a leading / anchors at the root");
        assert!(a.is_lfs("sub/a.txt"));
        assert!(!a.is_lfs("x/sub/a.txt"), "a / inside anchors at the root");
    }

    #[test]
    fn later_lines_win() {
        let a = Attributes::parse("*.bin filter=lfs\nsmall.bin -filter\n*.dat filter=lfs\nx.dat !filter\n*.raw filter=lfs\n*.raw filter=other\nkeep.bin diff=lfs\n");
        assert!(a.is_lfs("big.bin"));
        assert!(!a.is_lfs("small.bin"));
        assert!(!a.is_lfs("x.dat"));
        assert!(a.is_lfs("y.dat"));
        assert!(!a.is_lfs("a.raw"));
        assert!(
            a.is_lfs("keep.bin"),
            "a line without filter changes nothing"
        );
        let back = Attributes::parse("small.bin -filter\n*.bin filter=lfs\n");
        assert!(back.is_lfs("small.bin"));
    }

    #[test]
    fn ignored_lines() {
        let a = Attributes::parse(&format!(
            "# *.bin filter=lfs\n!x.bin filter=lfs\ndir/ filter=lfs\n{} filter=lfs\n",
            "*".repeat(3000)
        ));
        assert!(!a.is_lfs("x.bin"));
        assert!(!a.is_lfs("dir/a"));
        assert!(
            !a.is_lfs("anything"),
            "an over-long line is ignored, as git does"
        );
    }

    #[test]
    fn many_stars_stay_fast() {
        // Exponential in the number of stars with a backtracking matcher: >20 s for 7.
        let stars = format!("{}b filter=lfs", "*a".repeat(200));
        let a = Attributes::parse(&stars);
        let path = "a".repeat(1000);
        let started = std::time::Instant::now();
        assert!(!a.is_lfs(&path));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    /// wildmatch's definition, recursively (exponential, for small inputs only):
    /// `*`/`?` never match `/`; a run of two or more stars filling a whole segment
    /// matches anything (`**/` also no directory at all).
    fn reference(p: &[char], t: &[char], segment_start: bool) -> bool {
        let Some(&first) = p.first() else {
            return t.is_empty();
        };
        match first {
            '*' => {
                let run = p.iter().take_while(|c| **c == '*').count();
                let rest = &p[run..];
                let whole_segment = segment_start && (rest.is_empty() || rest[0] == '/');
                if run >= 2 && whole_segment {
                    if rest.is_empty() {
                        return true;
                    }
                    // `**/`: zero or more directories.
                    reference(&rest[1..], t, true)
                        || (0..t.len())
                            .any(|i| t[i] == '/' && reference(&rest[1..], &t[i + 1..], true))
                } else {
                    (0..=t.len())
                        .take_while(|&i| i == 0 || t[i - 1] != '/')
                        .any(|i| reference(rest, &t[i..], false))
                }
            }
            '?' => t.first().is_some_and(|c| *c != '/') && reference(&p[1..], &t[1..], false),
            c => t.first() == Some(&c) && reference(&p[1..], &t[1..], c == '/'),
        }
    }

    fn chars(alphabet: &'static [char], max: usize) -> impl Strategy<Value = Vec<char>> {
        proptest::collection::vec(proptest::sample::select(alphabet), 0..max)
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn agrees_with_the_definition(p in chars(&['a', 'b', '/', '*', '?'], 9), t in chars(&['a', 'b', '/'], 9)) {
            let (ps, ts): (String, String) = (p.iter().collect(), t.iter().collect());
            prop_assert_eq!(Glob::compile(&ps).matches(&ts), reference(&p, &t, true), "{} on {}", ps, ts);
        }

        /// Any text as a .gitattributes and any path: an answer, no panic.
        #[test]
        fn arbitrary_attributes(text in proptest::collection::vec(any::<char>(), 0..512), path in proptest::collection::vec(any::<char>(), 0..128)) {
            let text: String = text.into_iter().collect();
            let path: String = path.into_iter().collect();
            let a = Attributes::parse(&text);
            let _ = a.is_lfs(&path);
            prop_assert!(a.cost(path.len()) <= (text.len() as u64 + 1) * (path.len() as u64 + 1) * 2);
        }
    }
}
