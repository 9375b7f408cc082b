"""The history a socket starts with, from what the join script read."""

from services.gateway.timeline import History, joined_history


def entry(event_id: str, text: str) -> list:
    return [event_id, ["e", f'{{"type":"message","text":"{text}"}}']]


def test_the_latest_events_come_newest_first_and_go_out_oldest_first():
    history = joined_history([entry("3-0", "c"), entry("2-0", "b"), entry("1-5", "a")], None, None)
    assert history == History(
        frames=[
            '{"id":"1-5","type":"message","text":"a"}',
            '{"id":"2-0","type":"message","text":"b"}',
            '{"id":"3-0","type":"message","text":"c"}',
        ],
        last_id=(3, 0),
        truncated=False,
    )


def test_an_empty_room_has_no_last_id():
    assert joined_history([], None, None) == History(frames=[], last_id=None, truncated=False)
    assert joined_history([], (7, 0), None) == History(frames=[], last_id=None, truncated=False)


def test_events_after_since_keep_their_order():
    history = joined_history([entry("8-0", "x"), entry("9-1", "y")], (7, 0), ["5", "5", "1-0"])
    assert [frame[:12] for frame in history.frames] == ['{"id":"8-0",', '{"id":"9-1",']
    assert history.last_id == (9, 1) and history.truncated is False


def test_since_older_than_what_trimming_kept_is_flagged():
    # 10 entries added, 4 kept, the oldest kept is 7-0: events between 3-0 and 7-0 are gone.
    assert joined_history([entry("7-0", "x")], (3, 0), ["4", "10", "7-0"]).truncated is True
    assert joined_history([], (8, 0), ["4", "10", "7-0"]).truncated is False, "since is past the trimmed part"
    assert joined_history([entry("7-0", "x")], (3, 0), ["4", "4", "1-0"]).truncated is False, "nothing was trimmed"


def test_a_stream_trimmed_to_nothing_is_judged_by_its_last_id():
    assert joined_history([], (3, 0), ["0", "10", "12-0"]).truncated is True
