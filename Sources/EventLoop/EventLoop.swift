// The EventLoop module; see DESIGN.md.
