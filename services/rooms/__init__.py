"""The rooms service: room codes, lookup, occupancy; it also runs the presence reaper."""
