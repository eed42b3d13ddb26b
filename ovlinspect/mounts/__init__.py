"""What the kernel says about mounts: mountinfo and overlay options."""
