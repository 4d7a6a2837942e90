// The TLS module; see DESIGN.md.
