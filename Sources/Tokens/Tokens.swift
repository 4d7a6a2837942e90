// The Tokens module; see DESIGN.md.
