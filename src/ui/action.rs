//! What the user means, independent of which key (or click) expressed it.

/// Line editing in a text field (dialog fields, the jump prompt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    Insert(char),
    Backspace,
    Delete,
    Left,
    Right,
    Home,
    End,
    /// Ctrl-U: replace the prefilled text instead of erasing it key by key.
    Clear,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    // -- moving around
    Left,
    Right,
    Home,
    End,
    PageLeft,
    PageRight,
    /// Ctrl-U / Ctrl-D: half a page, as in vi and less.
    HalfPageLeft,
    HalfPageRight,
    /// `:` opens the jump prompt (a digit opens it with that digit typed).
    Jump(Option<char>),
    NextInfinite,
    PrevInfinite,
    NextModule,
    PrevModule,
    // -- the choice
    Toggle,
    /// Hands the layer under the cursor back to the rule.
    Forget,
    /// Back to the rule alone (asks when hand choices would be lost).
    ApplyRule,
    KeepAll,
    Invert,
    CycleRule,
    RuleUp,
    RuleDown,
    /// The module on screen drives the choice (again: back to the default module).
    DriveHere,
    Undo,
    Redo,
    // -- views
    ToggleScale,
    /// SVD or the Gram route for scans started from now on.
    SwitchMethod,
    ToggleSpectrum,
    ToggleSorted,
    Help,
    /// In the help overlay: scroll by this many rows (j/k) ...
    ScrollLines(i16),
    /// ... or by this many pages (PgDn/PgUp; Home/End go far enough to reach an end).
    ScrollPages(i16),
    Warnings,
    // -- writing
    WriteYaml,
    ExportModel,
    WriteScan,
    WriteUnfrozen,
    // -- what the cut costs
    /// Perplexity of the original (once) and of the current choice, in the background.
    Evaluate,
    /// Block Influence and the angular distances from activations, in the background; their
    /// tabs appear beside the SNR.
    Probe,
    // -- control
    /// Esc: the innermost thing — an open overlay, else a running export, else the scan.
    Cancel,
    Quit,
    /// Ctrl-C: leave now, no questions.
    ForceQuit,
    /// Mouse click at a terminal cell.
    Click(u16, u16),
    // -- inside overlays
    Edit(Edit),
    /// Enter in a dialog or the jump prompt.
    Submit,
    /// Tab in a dialog: the next field.
    NextField,
    /// y / n to a question.
    Answer(bool),
    /// `w` at the quit prompt: write the YAML, then quit.
    WriteThenQuit,
}
