"""The audit trail: every staff action (sign-in, sign-out, retry, resolve) with who, when and from where."""
