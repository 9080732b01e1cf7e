"""One Construct per AWS component; stacks wire them together."""
