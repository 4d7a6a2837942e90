// The Policy module; see DESIGN.md.
