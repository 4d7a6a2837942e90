// The HTTP1 module; see DESIGN.md.
