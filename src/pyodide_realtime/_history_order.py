"""The order of a history's items, kept in blocks so that no change costs a pass over the whole history.

A change to one item dirties its block; a snapshot rebuilds the dirty blocks' tuples and joins the
tuple of every block (:class:`~pyodide_realtime.items.HistoryItems`). Finding an item's neighbours,
inserting, moving or dropping one costs O(block) within its block, plus O(blocks) at C speed to find
the block's place: 10,000 items are about 160 blocks.
"""

from __future__ import annotations

from collections.abc import Mapping

from .items import HistoryItems, RealtimeItem

__all__ = ["ItemOrder"]

#: Items per block after a split; a block splits at twice this, and merges into its neighbour when the
#: two fit in one. A snapshot costs O(BLOCK_ITEMS) for the block that changed plus O(items / BLOCK_ITEMS).
BLOCK_ITEMS = 64


class _Block:
    __slots__ = ("ids", "items")

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.items: tuple[RealtimeItem, ...] | None = None  # the snapshot of ``ids``; None once one changed


class ItemOrder:
    """Item ids in order, with the snapshot of their items (looked up in the mapping given to :meth:`snapshot`).

    The caller says which ids' items changed (:meth:`touch`); inserting and removing touch what they move.
    """

    def __init__(self) -> None:
        self._blocks: list[_Block] = []
        self._block_of: dict[str, _Block] = {}
        self._parts: list[tuple[RealtimeItem, ...]] | None = None  # each block's snapshot; None after a split or merge
        self._dirty: dict[_Block, None] = {}  # blocks whose snapshot is stale (in ``_parts`` too)

    def __len__(self) -> int:
        return len(self._block_of)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._block_of

    def first(self) -> str | None:
        return self._blocks[0].ids[0] if self._blocks else None

    def last(self) -> str | None:
        return self._blocks[-1].ids[-1] if self._blocks else None

    def previous(self, item_id: str) -> str | None:
        """The id before ``item_id`` (None for the first)."""
        block = self._block_of[item_id]
        position = block.ids.index(item_id)
        if position:
            return block.ids[position - 1]
        index = self._blocks.index(block)
        return self._blocks[index - 1].ids[-1] if index else None

    def next(self, item_id: str) -> str | None:
        """The id after ``item_id`` (None for the last)."""
        block = self._block_of[item_id]
        position = block.ids.index(item_id)
        if position + 1 < len(block.ids):
            return block.ids[position + 1]
        index = self._blocks.index(block) + 1
        return self._blocks[index].ids[0] if index < len(self._blocks) else None

    def touch(self, item_id: str) -> None:
        """The item of ``item_id`` changed: its block's snapshot is rebuilt at the next :meth:`snapshot`."""
        block = self._block_of[item_id]
        block.items = None
        self._dirty[block] = None

    def insert(self, item_id: str, after: str | None) -> None:
        """Put the new ``item_id`` right after ``after`` (an id in the order), or first for None."""
        if item_id in self._block_of:
            raise ValueError(f"{item_id!r} is already in the order")
        if not self._blocks:
            self._blocks.append(_Block([]))
            self._parts = None
        if after is None:
            block, position = self._blocks[0], 0
        elif after == self._blocks[-1].ids[-1]:  # appending, the usual case: the last block, or a new one
            block, position = self._blocks[-1], len(self._blocks[-1].ids)
            if position >= BLOCK_ITEMS:
                block, position = _Block([]), 0
                self._blocks.append(block)
                self._parts = None
        else:
            block = self._block_of[after]
            position = block.ids.index(after) + 1
        block.ids.insert(position, item_id)
        self._block_of[item_id] = block
        self.touch(item_id)
        if len(block.ids) >= 2 * BLOCK_ITEMS:
            self._split(block)

    def remove(self, item_id: str) -> None:
        block = self._block_of.pop(item_id)
        block.ids.remove(item_id)
        block.items = None
        self._dirty[block] = None
        index = self._blocks.index(block)
        if not block.ids:
            del self._blocks[index]
            self._dirty.pop(block, None)
            self._parts = None
        elif index + 1 < len(self._blocks) and len(block.ids) + len(self._blocks[index + 1].ids) <= BLOCK_ITEMS:
            self._merge(index)

    def snapshot(self, items: Mapping[str, RealtimeItem]) -> HistoryItems:
        """The items of every id, in order (``items`` maps each id to its current item)."""
        if self._parts is None:
            self._parts = [self._rebuilt(block, items) for block in self._blocks]
        else:
            for block in self._dirty:
                self._parts[self._blocks.index(block)] = self._rebuilt(block, items)
        self._dirty.clear()
        return HistoryItems(tuple(self._parts), len(self._block_of))

    @staticmethod
    def _rebuilt(block: _Block, items: Mapping[str, RealtimeItem]) -> tuple[RealtimeItem, ...]:
        if block.items is None:
            block.items = tuple(map(items.__getitem__, block.ids))
        return block.items

    def _split(self, block: _Block) -> None:
        index = self._blocks.index(block)
        tail = _Block(block.ids[BLOCK_ITEMS:])
        del block.ids[BLOCK_ITEMS:]
        block.items = None
        self._blocks.insert(index + 1, tail)
        for item_id in tail.ids:
            self._block_of[item_id] = tail
        self._dirty.pop(block, None)
        self._parts = None

    def _merge(self, index: int) -> None:
        block, following = self._blocks[index], self._blocks.pop(index + 1)
        block.ids.extend(following.ids)
        block.items = None
        for item_id in following.ids:
            self._block_of[item_id] = block
        self._dirty.pop(block, None)
        self._dirty.pop(following, None)
        self._parts = None
