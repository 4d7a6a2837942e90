// The Proxy module; see DESIGN.md.
