"""Emoji cues, shared by every language (language ``zxx``: no linguistic content)."""

from amber.harm_poll.lexicon import CueClass as C
from amber.harm_poll.lexicon import Lexicon

LEXICON = Lexicon(
    language="zxx",
    name="emoji",
    entries={
        C.harm_act: (
            "💀@0.7",
            "☠@0.8",
            "🔪",
            "🗡",
            "⚰@0.7",
            "🪦@0.6",
            "🔫",
            "🩸@0.5",
            "🪓",
            "⚔@0.5",
            "🪢@0.7",
        ),
        C.spare_act: ("🕊", "🆓"),
        C.captive: ("⛓",),
        C.reaction: ("👍", "👎", "❤", "♥", "😡", "😢", "🔥", "✅", "❌", "🔴", "🟢", "🅰", "🅱"),
        C.audience_decides: ("🗳",),
        C.deadline: ("⏰", "⏳", "⌛", "⏱"),
        C.humor: ("😂", "🤣", "😆", "😄", "😅", "🙃", "😜", "🤪", "😹"),
        C.fiction_game: ("🎮", "📺", "🎬", "📚", "📖", "🐉", "🧙", "🎲", "🃏"),
        C.sports: ("⚽", "🏀", "🏈", "⚾", "🏏", "🏒", "🎾", "🏆", "🥅"),
        C.animal_pest: ("🕷", "🐭", "🐀", "🪳", "🐜", "🐝", "🦟", "🪰", "🐛", "🦗", "🐁"),
        C.news_report: ("📰",),
    },
)
