//! Man pages: nflogd(8) from the command line's definition (clap_mangen, in main.rs), and
//! nflogd.toml(5) from the configuration reference (docs/configuration.md), turned from its
//! Markdown into roff here: headings, paragraphs, code blocks, tables and lists are all it has.

/// docs/configuration.md, as built in.
pub const CONFIGURATION_MD: &str = include_str!("../../../docs/configuration.md");

/// Text for roff: backslashes escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\e")
}

/// A line of text for roff: a leading dot or quote kept from being a request.
fn line(s: String) -> String {
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// Inline Markdown: `code` and **strong** in bold, [text](link) as its text.
fn inline(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(['`', '*', '[']) {
        out.push_str(&escape(&rest[..i]));
        let tail = &rest[i..];
        if let Some(code) = tail.strip_prefix('`') {
            if let Some(end) = code.find('`') {
                out.push_str(&format!("\\fB{}\\fR", escape(&code[..end])));
                rest = &code[end + 1..];
                continue;
            }
        } else if let Some(strong) = tail.strip_prefix("**") {
            if let Some(end) = strong.find("**") {
                out.push_str(&format!("\\fB{}\\fR", escape(&strong[..end])));
                rest = &strong[end + 2..];
                continue;
            }
        } else if let Some(link) = tail.strip_prefix('[') {
            if let Some((text, after)) = link.split_once("](") {
                if let Some(end) = after.find(')') {
                    out.push_str(&escape(text));
                    rest = &after[end + 1..];
                    continue;
                }
            }
        }
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(&escape(rest));
    line(out)
}

/// The cells of a table row `| a | b |`; `|` inside `code` stays in its cell.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut code = false;
    for c in row.chars() {
        match c {
            '`' => {
                code = !code;
                cells.last_mut().expect("one cell").push(c);
            }
            '|' if !code => cells.push(String::new()),
            c => cells.last_mut().expect("one cell").push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_string()).collect()
}

/// `markdown` as a roff page `name(section)`.
pub fn roff(name: &str, section: &str, summary: &str, markdown: &str) -> String {
    let mut out = format!(
        ".TH {} {section} \"\" \"nflogd {}\"\n.SH NAME\n{name} \\- {summary}\n.SH DESCRIPTION\n",
        name.to_uppercase(),
        env!("CARGO_PKG_VERSION")
    );
    let mut in_code = false;
    let mut header: Option<Vec<String>> = None;
    let mut paragraph = false;
    for text in markdown.lines() {
        if text.starts_with("```") {
            out += if in_code {
                ".fi\n.RE\n"
            } else {
                ".PP\n.RS 4\n.nf\n"
            };
            in_code = !in_code;
            paragraph = false;
            continue;
        }
        if in_code {
            out += &line(escape(text));
            out.push('\n');
            continue;
        }
        let t = text.trim_end();
        if t.starts_with('|') {
            let row = cells(t);
            if row
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            match &header {
                None => header = Some(row),
                Some(h) => {
                    // A row as a tagged paragraph: the first cell, then the others by their
                    // column names.
                    out += &format!(".TP\n{}\n", inline(&row[0]));
                    let rest: Vec<String> = row
                        .iter()
                        .enumerate()
                        .skip(1)
                        .filter(|(_, c)| !c.is_empty())
                        .map(|(i, c)| match h.get(i) {
                            Some(col) if h.len() > 2 && i + 1 < h.len() => {
                                format!("{}: {}.", col, inline(c))
                            }
                            _ => inline(c),
                        })
                        .collect();
                    out += &rest.join(" ");
                    out.push('\n');
                }
            }
            paragraph = false;
            continue;
        }
        header = None;
        if t.is_empty() {
            paragraph = false;
        } else if let Some(h) = t.strip_prefix("# ") {
            let _ = h; // the page's own title: NAME says it
        } else if let Some(h) = t.strip_prefix("## ") {
            out += &format!(".SH {}\n", inline(h));
            paragraph = false;
        } else if let Some(h) = t.strip_prefix("### ") {
            out += &format!(".SS {}\n", inline(h));
            paragraph = false;
        } else if let Some(item) = t.strip_prefix("- ") {
            out += &format!(".IP \\(bu 2\n{}\n", inline(item));
            paragraph = true;
        } else {
            if !paragraph {
                out += ".PP\n";
                paragraph = true;
            }
            out += &inline(t.trim_start());
            out.push('\n');
        }
    }
    out += ".SH SEE ALSO\nnflogd(8)\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_roff() {
        let page = roff(
            "x.toml",
            "5",
            "test",
            "# T\n\nSome `code` and **bold**, a [link](http://x).\n.dot\n\n## Keys\n\n| key | default | meaning |\n|---|---|---|\n| `a|b` | `1` | what \\ it does |\n\n```toml\n.x = 1\n```\n- item\n",
        );
        assert!(page.starts_with(".TH X.TOML 5"), "{page}");
        assert!(
            page.contains("Some \\fBcode\\fR and \\fBbold\\fR, a link.\n\\&.dot\n"),
            "{page}"
        );
        assert!(page.contains(".SH Keys\n"), "{page}");
        assert!(
            page.contains(".TP\n\\fBa|b\\fR\ndefault: \\fB1\\fR. what \\e it does\n"),
            "{page}"
        );
        assert!(page.contains(".nf\n\\&.x = 1\n.fi\n"), "{page}");
        assert!(page.contains(".IP \\(bu 2\nitem\n"), "{page}");
    }
}
