//! Tables that fit the terminal: columns get narrower (cells cut with `…`) and optional
//! columns are dropped, so no line is ever wider than the width asked for. Lines are
//! never wrapped.

/// How a column's cells line up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One column: its header, alignment, the narrowest it may be cut to, and whether it
/// may be left out altogether when even the narrowest columns do not fit.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub header: &'static str,
    pub align: Align,
    pub min: usize,
    pub optional: bool,
}

impl Column {
    pub const fn left(header: &'static str, min: usize) -> Self {
        Column {
            header,
            align: Align::Left,
            min,
            optional: false,
        }
    }

    pub const fn right(header: &'static str, min: usize) -> Self {
        Column {
            header,
            align: Align::Right,
            min,
            optional: false,
        }
    }

    /// Dropped (last first) when the table cannot fit otherwise.
    pub const fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

/// A cell: its text and an ANSI style applied only when colour is on.
#[derive(Clone, Debug)]
pub struct Cell {
    pub text: String,
    pub style: &'static str,
}

impl Cell {
    pub fn plain(text: impl Into<String>) -> Self {
        Cell::styled(text, "")
    }

    pub fn styled(text: impl Into<String>, style: &'static str) -> Self {
        Cell {
            text: text.into(),
            style,
        }
    }
}

/// Columns and rows, written to fit `width` columns.
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

/// The indent before the first column.
const INDENT: usize = 2;

impl Table {
    pub fn new(columns: &[Column]) -> Self {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The columns kept and their widths, and the gap between columns, for `width`.
    fn layout(&self, width: usize) -> (Vec<Option<usize>>, usize) {
        let natural: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                self.rows
                    .iter()
                    .map(|r| text_width(&r[i].text))
                    .chain([text_width(c.header)])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let total = |widths: &[Option<usize>], gap: usize| {
            let kept: Vec<usize> = widths.iter().flatten().copied().collect();
            INDENT + kept.iter().sum::<usize>() + gap * kept.len().saturating_sub(1)
        };
        let mut widths: Vec<Option<usize>> = natural.iter().map(|w| Some(*w)).collect();
        for gap in [2, 1] {
            if total(&widths, gap) <= width {
                return (widths, gap);
            }
        }
        let gap = 1;
        // Drop optional columns, last first, before cutting any cell.
        for i in (0..widths.len()).rev() {
            if total(&widths, gap) <= width {
                break;
            }
            if self.columns[i].optional {
                widths[i] = None;
            }
        }
        // Still too wide: narrow the columns with the most room above their minimum, one
        // character at a time.
        while total(&widths, gap) > width {
            let widest = widths
                .iter()
                .enumerate()
                .filter_map(|(i, w)| w.map(|w| (i, w)))
                .filter(|(i, w)| *w > self.columns[*i].min.max(1))
                .max_by_key(|(i, w)| (*w - self.columns[*i].min, usize::MAX - i));
            match widest {
                Some((i, w)) => widths[i] = Some(w - 1),
                None => break,
            }
        }
        // Give back to the cut columns what dropping freed.
        loop {
            let spare = width.saturating_sub(total(&widths, gap));
            let cut = (0..widths.len()).find(|&i| widths[i].is_some_and(|w| w < natural[i]));
            match (spare, cut) {
                (0, _) | (_, None) => break,
                (_, Some(i)) => widths[i] = widths[i].map(|w| (w + spare).min(natural[i])),
            }
        }
        (widths, gap)
    }

    /// Header (dim) and rows, each line at most `width` columns (a table whose minimum
    /// widths do not fit is cut at `width`).
    pub fn write(&self, out: &mut String, width: usize, color: bool) {
        let (widths, gap) = self.layout(width);
        let header: Vec<Cell> = self
            .columns
            .iter()
            .map(|c| Cell::styled(c.header, DIM))
            .collect();
        self.line(out, &header, &widths, gap, width, color);
        for row in &self.rows {
            self.line(out, row, &widths, gap, width, color);
        }
    }

    fn line(
        &self,
        out: &mut String,
        cells: &[Cell],
        widths: &[Option<usize>],
        gap: usize,
        width: usize,
        color: bool,
    ) {
        let mut plain = " ".repeat(INDENT);
        let mut styled = plain.clone();
        let mut first = true;
        for ((cell, w), column) in cells.iter().zip(widths).zip(&self.columns) {
            let Some(w) = *w else { continue };
            if !first {
                plain.push_str(&" ".repeat(gap));
                styled.push_str(&" ".repeat(gap));
            }
            first = false;
            let text = cut(&cell.text, w);
            let pad = " ".repeat(w - text_width(&text));
            let painted = paint(color, cell.style, &text);
            match column.align {
                Align::Left => {
                    plain.push_str(&text);
                    plain.push_str(&pad);
                    styled.push_str(&painted);
                    styled.push_str(&pad);
                }
                Align::Right => {
                    plain.push_str(&pad);
                    plain.push_str(&text);
                    styled.push_str(&pad);
                    styled.push_str(&painted);
                }
            }
        }
        if text_width(plain.trim_end()) > width {
            // Even the minimum widths do not fit: cut the line (never wrap it).
            out.push_str(&cut(plain.trim_end(), width));
        } else {
            out.push_str(styled.trim_end());
        }
        out.push('\n');
    }
}

const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// `text` in `style` when colour is on.
pub fn paint(color: bool, style: &str, text: &str) -> String {
    if color && !style.is_empty() {
        format!("{style}{text}{RESET}")
    } else {
        text.to_string()
    }
}

/// Columns `text` takes (one per char: the views print ASCII and `…`).
pub fn text_width(text: &str) -> usize {
    text.chars().count()
}

/// `text` cut to `width` columns, ending in `…` when something was cut.
pub fn cut(text: &str, width: usize) -> String {
    if text_width(text) <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push('…');
    s
}

/// `text` word-wrapped to `width` columns, each line after `indent`; at most
/// `max_lines` lines (the last cut with `…` when more was left).
pub fn wrap(text: &str, indent: &str, width: usize, max_lines: usize) -> Vec<String> {
    let room = width.saturating_sub(text_width(indent)).max(10);
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let needed = if current.is_empty() {
            text_width(word)
        } else {
            text_width(&current) + 1 + text_width(word)
        };
        if needed > room && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    let more = lines.len() > max_lines;
    lines.truncate(max_lines);
    if more && let Some(last) = lines.last_mut() {
        *last = cut(&format!("{last} …"), room);
    }
    lines
        .into_iter()
        .map(|l| format!("{indent}{}", cut(&l, room)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new(&[
            Column::left("HOST", 6),
            Column::right("LOSS%", 5),
            Column::left("NOTE", 4).optional(),
        ]);
        t.row(vec![
            Cell::plain("192.0.2.10:40000"),
            Cell::plain("10.0"),
            Cell::plain("isp>gw"),
        ]);
        t
    }

    #[test]
    fn wide_enough_is_natural_with_two_spaces() {
        let mut out = String::new();
        table().write(&mut out, 80, false);
        assert_eq!(
            out,
            "  HOST              LOSS%  NOTE\n  192.0.2.10:40000   10.0  isp>gw\n"
        );
    }

    #[test]
    fn narrow_cuts_then_drops_never_wider() {
        for width in 10..40 {
            let mut out = String::new();
            table().write(&mut out, width, false);
            for line in out.lines() {
                assert!(text_width(line) <= width, "{width}: {line:?}");
            }
        }
        // The optional NOTE goes first, then HOST is cut.
        let mut out = String::new();
        table().write(&mut out, 24, false);
        assert_eq!(out, "  HOST             LOSS%\n  192.0.2.10:40000  10.0\n");
        let mut out = String::new();
        table().write(&mut out, 20, false);
        assert_eq!(
            out,
            "  HOST         LOSS%\n  192.0.2.10:… 10.0\n".replace("… 10.0", "…  10.0")
        );
    }

    #[test]
    fn wrapping_keeps_words_and_marks_the_cut() {
        let lines = wrap("one two three four five six", "    ", 18, 2);
        assert_eq!(lines, vec!["    one two three", "    four five six"]);
        let lines = wrap("one two three four five six", "    ", 18, 1);
        assert_eq!(lines, vec!["    one two three…"]);
    }
}
