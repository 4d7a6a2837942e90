// The Recording module; see DESIGN.md.
