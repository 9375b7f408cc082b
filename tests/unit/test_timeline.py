"""The history a socket starts with, from what the join script read."""

from services.gateway.timeline import History, joined_history

FRAMES = '[{"id":"1-5","type":"message","text":"a"},{"id":"3-0","type":"message","text":"c"}]'


def test_the_latest_events_keep_the_script_s_frames_and_their_last_id():
    assert joined_history(FRAMES, "3-0", None, None) == History(frames_json=FRAMES, last_id=(3, 0), truncated=False)


def test_an_empty_room_has_no_last_id():
    assert joined_history("[]", "", None, None) == History(frames_json="[]", last_id=None, truncated=False)
    assert joined_history("[]", "", (7, 0), None) == History(frames_json="[]", last_id=None, truncated=False)


def test_since_within_what_was_kept_is_not_flagged():
    assert joined_history(FRAMES, "3-0", (1, 0), ["5", "5", "1-0"]).truncated is False


def test_since_older_than_what_trimming_kept_is_flagged():
    # 10 entries added, 4 kept, the oldest kept is 7-0: events between 3-0 and 7-0 are gone.
    assert joined_history(FRAMES, "9-0", (3, 0), ["4", "10", "7-0"]).truncated is True
    assert joined_history("[]", "", (8, 0), ["4", "10", "7-0"]).truncated is False, "since is past the trimmed part"
    assert joined_history(FRAMES, "9-0", (3, 0), ["4", "4", "1-0"]).truncated is False, "nothing was trimmed"


def test_a_stream_trimmed_to_nothing_is_judged_by_its_last_id():
    assert joined_history("[]", "", (3, 0), ["0", "10", "12-0"]).truncated is True
