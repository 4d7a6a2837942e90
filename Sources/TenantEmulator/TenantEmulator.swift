// The TenantEmulator module; see DESIGN.md.
