FORK_JOIN = """
version: '2.0'
wf:
  input:
    - x: 1
  tasks:
    a:
      action: std.echo output=<% $.x %>
      publish:
        y: <% task().result + 1 %>
      on-success: [b, c]
    b:
      publish:
        z: 5
      on-success: d
    c:
      action: std.echo output="hi"
      on-success: d
    d:
      join: all
      action: std.echo output=<% $.y + $.z %>
      publish:
        total: <% task().result %>
  output:
    total: <% $.total %>
"""


def test_join_merges_branch_contexts_and_output_reads_them(runner):
    s = runner.run(FORK_JOIN)
    assert s["state"] == "SUCCESS"
    assert s["output"] == {"total": 7}
    assert [t["name"] for t in s["tasks"]] == ["a", "b", "c", "d"]
    assert runner.task(s, "d")["result"] == 7
