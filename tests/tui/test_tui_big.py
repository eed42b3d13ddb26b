"""Big hosts: lazy tree children, rows and mounts added in batches, jumps into later batches."""

from __future__ import annotations

from tuikit import SIZE, big_scan, make_app, run, settle


def test_many_namespaces_fill_in_batches_and_build_children_lazily() -> None:
    async def body() -> None:
        app = make_app(big_scan(450, 20))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            while app.ns_table.restoring:
                await pilot.pause()
            assert len(app.ns_table.row_keys) == 450
            assert app.ns_table.get_cell("mnt:5449", "badge").plain.strip() == "✖ error"
            mounts = app.mount_tree.root.children
            assert len(mounts) == 20
            assert mounts[0].is_expanded  # the worst mount, opened on the first screen
            assert all(len(node.children) == 0 for node in mounts[1:])  # nothing else built
            app.ns_table.focus()
            await pilot.press("end")
            await pilot.pause()
            assert app.selected_ns == app.ns_table.row_keys[-1] != app.ns_table.row_keys[0]
            assert mounts is not app.mount_tree.root.children

    run(body)


def test_thousands_of_mounts_in_one_namespace_and_a_jump_to_the_last() -> None:
    async def body() -> None:
        app = make_app(big_scan(1, 3000))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            app.jump_to("mnt:5000", 3100)  # the last mount: in the last batch
            while app.mount_tree.filling:
                await pilot.pause()
            await pilot.pause()
            assert len(app.mount_tree.root.children) == 3000
            assert app.mount_tree.cursor_node.data.key == ("mnt:5000", "3100")
            assert app.focused is app.mount_tree

    run(body)
