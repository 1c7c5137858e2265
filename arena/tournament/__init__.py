"""Tournaments: schedules in three formats, resumable runs, and reports with TrueSkill and Bradley–Terry standings."""
