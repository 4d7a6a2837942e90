// The HTTP2 module; see DESIGN.md.
